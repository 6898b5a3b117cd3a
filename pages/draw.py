"""Draw: where the chosen model fails and what it learned."""
import streamlit as st

st.title("Draw")
st.info("Train a model first: its mistakes and what it learned will show here.")
