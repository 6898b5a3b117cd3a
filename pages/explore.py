"""Explore: where the chosen model fails and what it learned."""
import streamlit as st

st.title("Explore")
st.info("Train a model first: its mistakes and what it learned will show here.")
