"""Languages: gettext catalogs (locales/<language>/LC_MESSAGES/mnist_live.po, read with Babel), the language of the
page being drawn, and numbers written the way that language writes them.

Pages and the library mark text with `_("...")` (placeholders by name: `_("{n} epochs").format(n=3)`); Babel
extracts the marks into locales/mnist_live.pot (see README, "Languages"). The language lives in a context
variable that each page run and each fragment run sets first, so the library's sentences follow it too.
"""
from __future__ import annotations

import contextvars
import functools
import json
import re
from pathlib import Path

LOCALES = Path(__file__).resolve().parents[1] / "locales"
DOMAIN = "mnist_live"
LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español", "fr": "Français"}  # code -> its own name
PSEUDO = "xx"  # a test language: every catalog text, visibly changed; what is not changed never went through one
DEFAULT = "en"

_language: contextvars.ContextVar[str] = contextvars.ContextVar("language", default=DEFAULT)


def use(language: str | None) -> str:
    """Make language (a code of LANGUAGES, or PSEUDO) the one of this page run; unknown codes give English."""
    code = language if language in LANGUAGES or language == PSEUDO else DEFAULT
    _language.set(code)
    return code


def current() -> str:
    """The language of this page run."""
    return _language.get()


def from_browser(locale: str | None) -> str:
    """The language for a browser's locale ('de-DE', 'fr', 'pt-BR'...): its language when there is a catalog of it,
    else English."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else DEFAULT


@functools.lru_cache(maxsize=None)
def _catalog(language: str) -> dict:
    """msgid (or (msgid, plural) for plural forms) -> the translation(s), read once per server (read-only)."""
    if language == PSEUDO:
        return {}
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return {}
    from babel.messages.pofile import read_po
    with path.open("rb") as f:
        catalog = read_po(f, locale=language)
    out = {}
    for message in catalog:
        if not message.id or message.fuzzy or not message.string:
            continue
        if isinstance(message.id, tuple):
            if all(message.string):
                out[message.id] = tuple(message.string)
        else:
            out[message.id] = message.string
    return out


_PSEUDO_LETTERS = str.maketrans("aeiouyAEIOUYcnsCNS", "àéîöûýÀÉÎÖÛÝçñšÇÑŠ")
_FIELD = re.compile(r"(\{[^{}]*\}|\*\*|\*|`[^`]*`|:material/[a-z_]+:|https?://\S+)")


def pseudo(text: str) -> str:
    """A visibly changed copy of text (placeholders, markdown marks and links kept), wrapped in ⟦ ⟧."""
    parts = _FIELD.split(text)
    return "⟦" + "".join(p if _FIELD.fullmatch(p) else p.translate(_PSEUDO_LETTERS) for p in parts) + "⟧"


def gettext(message: str) -> str:
    """message in the current language (English when the catalog lacks it)."""
    language = _language.get()
    if language == DEFAULT:
        return message
    if language == PSEUDO:
        return pseudo(message)
    return _catalog(language).get(message, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural message for n, in the current language."""
    language = _language.get()
    if language == PSEUDO:
        return pseudo(singular if n == 1 else plural)
    forms = _catalog(language).get((singular, plural)) if language != DEFAULT else None
    if forms is None:
        return singular if n == 1 else plural
    if language == "fr":  # French counts 0 and 1 as singular
        return forms[0] if n in (0, 1) else forms[-1]
    return forms[0] if n == 1 else forms[-1]


_ = gettext


def N_(message: str) -> str:
    """Mark a module-level text for the catalog without translating it now (it is translated where shown)."""
    return message


_LATER = "\x1ei18n:"  # starts a later() text; no sentence does


def later(message: str, **fields) -> str:
    """message (marked with N_) and its fields as one text to store and say later, in the language of whoever reads
    it (a notice the server writes for a student): said() translates it. A list field is said as a list."""
    return _LATER + json.dumps({"message": message, "fields": fields}, ensure_ascii=False)


def later_text(message: str) -> str:
    """message (marked with N_) to store and say later, as later() does; a later() text stays as it is."""
    return message if message.startswith(_LATER) else later(message)


def said(text: str) -> str:
    """A later() text in the current language (its later() fields too); any other text as it is (a notice stored
    before later() existed)."""
    if not text.startswith(_LATER):
        return text
    try:
        kept = json.loads(text[len(_LATER):])
        fields = {k: listed(v) if isinstance(v, list) else said(v) if isinstance(v, str) else v
                  for k, v in kept["fields"].items()}
        return gettext(kept["message"]).format(**fields)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return text


def listed(items: list) -> str:
    """Items as the current language lists them ("Run 1, Run 2 and Run 3" / "Run 1, Run 2 und Run 3")."""
    from babel.lists import format_list
    return format_list([str(i) for i in items], locale=_babel_locale()) if items else ""


def number(value: float, decimals: int = 0) -> str:
    """A number as the current language writes it (1,234.5 / 1.234,5 / 1 234,5), rounded as Python rounds (the
    figures quoted in sentences must be the figures the page shows)."""
    text = f"{value:,.{decimals}f}"
    locale = _babel_locale()
    if locale == DEFAULT:
        return text
    from babel.numbers import get_decimal_symbol, get_group_symbol
    return text.replace(",", "\0").replace(".", get_decimal_symbol(locale)).replace("\0", get_group_symbol(locale))


def short(value: float) -> str:
    """A number in its shortest form (0.001, 1e-05) as the current language writes it (0,001)."""
    text = f"{value:g}"
    locale = _babel_locale()
    if locale == DEFAULT:
        return text
    from babel.numbers import get_decimal_symbol
    return text.replace(".", get_decimal_symbol(locale))


def percent(value: float, decimals: int = 0) -> str:
    """A fraction (0.873) as a percentage the way the current language writes it (87.3% / 87,3 %)."""
    locale = _babel_locale()
    shown = number(value * 100, decimals)
    if locale == DEFAULT:
        return shown + "%"
    from babel.numbers import format_percent
    before, _zero, after = format_percent(0, locale=locale).partition("0")
    return before + shown + after


def chart_numbers() -> dict:
    """The current language's way of writing numbers as a d3-format locale: what Vega-Lite charts write their axes,
    legends and tooltips with ({"decimal": ",", "thousands": ".", "grouping": [3], ...})."""
    locale = _babel_locale()
    fifty = percent(0.5)
    spec = {"decimal": ".", "thousands": ",", "grouping": [3], "currency": ["$", ""], "percent": "%"}
    if locale != DEFAULT:
        from babel.numbers import get_decimal_symbol, get_group_symbol
        spec.update(decimal=get_decimal_symbol(locale), thousands=get_group_symbol(locale), currency=["", " €"])
    spec["percent"] = fifty[fifty.index("50") + 2:] or "%"  # "%", or with the space the language puts before it
    return spec


def _babel_locale() -> str:
    language = _language.get()
    return language if language in LANGUAGES else DEFAULT
