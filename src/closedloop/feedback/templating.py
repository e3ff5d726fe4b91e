"""The personalized-text template language (OnTask-compatible, names only).

Syntax (documented in ``docs/feedback-templates.md``):

* ``{{ column name }}`` / ``{{ attribute name }}`` insert a value. Names may hold spaces
  and symbols; a workflow attribute wins over a column of the same name (as OnTask).
* ``{% if condition name %}…{% elif other %}…{% else %}…{% endif %}`` show text when one
  of the action's conditions is true for the row.
* ``{% report "Col A" "Col B" %}`` (also OnTask's ``ot_insert_report``) inserts the listed
  columns of every selected row: an HTML table in an email report, a
  ``{"Col A": [...], ...}`` object in a JSON report.
* ``{% rubric %}`` inserts the learner's rubric feedback (rubric actions).

Nothing else is a tag: filters, attribute access, calls, loops, ``include``, ``raw`` and
comments are refused at compile time with the line they are on, never evaluated.

How it works: the source is tokenised, every name is mapped to a safe placeholder
(``v0``, ``c1``, ``r0``) and the result is compiled ONCE by Jinja2's immutable sandbox.
For HTML, the *template's* markup is sanitized once with nh3 at compile time; values are
autoescaped when each row is rendered. Markdown is converted to HTML first. Plain text
is not escaped. JSON templates insert each value JSON-encoded (``"text"``, ``12``,
``null``, ``true``).

Values: NULL → empty (``null`` in JSON); a double that is integral prints without
``.0`` (``85.0`` → ``85``); booleans print ``True`` / ``False``; datetimes print
``YYYY-MM-DD HH:MM`` in the account's time zone.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import markdown as markdown_lib  # type: ignore[import-untyped]
import nh3
from django.utils.translation import gettext as _
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

__all__ = [
    "CompiledTemplate",
    "TemplateError",
    "compile_template",
    "format_value",
    "rename_in_template",
    "template_names",
]

_TOKEN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_OPENERS = ("{{", "{%", "{#")
_QUOTED = re.compile(r'"([^"]*)"|\'([^\']*)\'')
REPORT_TAGS = ("report", "ot_insert_report")
RUBRIC_TAGS = ("rubric", "ot_insert_rubric_feedback")

SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_COMMON_ATTRS = {"class", "title", "dir", "lang", "align"}
SAFE_ATTRIBUTES = {
    "*": _COMMON_ATTRS,
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


class TemplateError(ValueError):
    """A template the language does not accept; ``line`` is 1-based (None: whole text)."""

    def __init__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        self.message = str(message)
        self.line = line
        #: which input it is about ("text_content", "subject"), when the caller knows
        self.field = field
        text = (
            self.message
            if line is None
            else _("Line %(line)s: %(message)s")
            % {
                "line": line,
                "message": self.message,
            }
        )
        super().__init__(text)


# --- tokenising --------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "text", "var", "if", "elif", "else", "endif", "report", "rubric"
    value: str  # text, or the name
    line: int
    raw: str
    names: tuple[str, ...] = ()  # report columns


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _check_text(chunk: str, text: str, start: int) -> None:
    for opener in _OPENERS:
        at = chunk.find(opener)
        if at >= 0:
            raise TemplateError(
                _("“%(opener)s” is not closed.") % {"opener": opener}, _line_of(text, start + at)
            )


def _parse_tag(raw: str, line: int) -> Token:
    if raw.startswith("{#"):
        raise TemplateError(_("Comments ({# … #}) are not allowed in templates."), line)
    inner = raw[2:-2].strip()
    if raw.startswith("{{"):
        if not inner:
            raise TemplateError(_("“{{ }}” needs a column or attribute name."), line)
        return Token("var", inner, line, raw)
    word, _sep, rest = inner.partition(" ")
    rest = rest.strip()
    if word in ("if", "elif"):
        if not rest:
            raise TemplateError(
                _("“{%% %(tag)s %%}” needs a condition name.") % {"tag": word}, line
            )
        return Token(word, rest, line, raw)
    if word in ("else", "endif") and not rest:
        return Token(word, "", line, raw)
    if word in REPORT_TAGS:
        names = tuple(a or b for a, b in _QUOTED.findall(rest))
        leftover = _QUOTED.sub("", rest).strip()
        if not names or leftover:
            raise TemplateError(
                _('Write the report tag as {%% report "Column A" "Column B" %%}.'), line
            )
        return Token("report", "", line, raw, names)
    if word in RUBRIC_TAGS and not rest:
        return Token("rubric", "", line, raw)
    raise TemplateError(
        _(
            "“%(tag)s” is not a tag of the template language: use {{ name }}, {%% if condition"
            " %%}, {%% else %%}, {%% endif %%}, {%% report … %%} or {%% rubric %%}."
        )
        % {"tag": raw[:60]},
        line,
    )


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        chunk = text[pos : match.start()]
        _check_text(chunk, text, pos)
        if chunk:
            tokens.append(Token("text", chunk, _line_of(text, pos), chunk))
        tokens.append(_parse_tag(match.group(0), _line_of(text, match.start())))
        pos = match.end()
    tail = text[pos:]
    _check_text(tail, text, pos)
    if tail:
        tokens.append(Token("text", tail, _line_of(text, pos), tail))
    return tokens


def template_names(text: str) -> set[str]:
    """Every column, attribute and condition name the template uses (no validation of
    existence; a template that does not tokenise yields the names found before the error)."""
    names: set[str] = set()
    for match in _TOKEN.finditer(text or ""):
        try:
            token = _parse_tag(match.group(0), 1)
        except TemplateError:
            continue
        if token.kind in ("var", "if", "elif"):
            names.add(token.value)
        names.update(token.names)
    return names


def rename_in_template(text: str, old: str, new: str) -> str:
    """``text`` with every use of the name ``old`` (value, condition, report column)
    replaced by ``new``; everything else is left byte for byte."""
    if not text or old == new:
        return text

    def replace(match: re.Match[str]) -> str:
        raw = match.group(0)
        try:
            token = _parse_tag(raw, 1)
        except TemplateError:
            return raw
        if token.kind == "var" and token.value == old:
            return "{{ " + new + " }}"
        if token.kind in ("if", "elif") and token.value == old:
            return "{% " + token.kind + " " + new + " %}"
        if token.kind == "report" and old in token.names:
            word = raw[2:-2].strip().split(" ", 1)[0]
            quoted = " ".join(f'"{new if n == old else n}"' for n in token.names)
            return "{% " + word + " " + quoted + " %}"
        return raw

    return _TOKEN.sub(replace, text)


# --- values ------------------------------------------------------------------------------


def format_value(value: Any, tz: dt.tzinfo | None = None) -> str:
    """How a value prints in a template (see the module docstring)."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is float:
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if kind is bool or kind is int:
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and tz is not None:
            value = value.astimezone(tz)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _json_value(value: Any, tz: dt.tzinfo | None) -> str:
    if isinstance(value, dt.datetime | dt.date):
        value = format_value(value, tz)
    elif isinstance(value, float) and value != value:  # NaN
        value = None
    return json.dumps(value, ensure_ascii=False)


_SCHEME = re.compile(r"^\s*([^:/?#]*):")


def _safe_url(value: Any) -> str:
    """A value placed at the start of an href/src: only http(s), mailto or relative."""
    text = str(value or "").strip()
    match = _SCHEME.match(text)
    if match and match.group(1).strip().lower() not in URL_SCHEMES:
        return ""
    return text


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        auto_reload=False,
        cache_size=0,
        keep_trailing_newline=True,
    )
    env.filters = {"safe_url": _safe_url}
    env.tests = {}
    env.globals = {}
    return env


_ENVS = {True: _environment(True), False: _environment(False)}


# --- HTML sanitising ---------------------------------------------------------------------


def sanitize_html(html: str) -> str:
    """The template's own HTML with scripts, event handlers and unsafe URLs removed."""
    return nh3.clean(
        html,
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


_INSIDE_TAG = re.compile(r"<[A-Za-z/][^<>]*$")
_URL_ATTR_START = re.compile(r"""\b(?:href|src)\s*=\s*["']?$""", re.IGNORECASE)


def _sanitize_with_markers(tokens: list[Token], markdown: bool) -> list[Token | str]:
    """Sanitize the HTML around the tags: each tag becomes a marker the HTML parser keeps
    in place (a comment between elements, a word inside an attribute), the markup is
    cleaned, and the markers are turned back into the tags. Returns text pieces and tags."""
    nonce = secrets.token_hex(6)
    word = f"clm{nonce}x"
    tags = [t for t in tokens if t.kind != "text"]
    skeleton_parts: list[str] = []
    index = 0
    for token in tokens:
        if token.kind == "text":
            skeleton_parts.append(token.value)
        else:
            skeleton_parts.append(f"{word}{index}y")
            index += 1
    skeleton = "".join(skeleton_parts)
    marker = re.compile(rf"{word}(\d+)y")
    if markdown:
        # a tag alone on its line is a block of its own (so "{% if x %}\n- item" is a list),
        # and must not leave an empty paragraph behind
        alone = re.compile(rf"^[ \t]*((?:{word}\d+y[ \t]*)+)$", re.MULTILINE)
        skeleton = alone.sub(lambda m: f"\n\n{m.group(1).strip()}\n\n", skeleton)
        skeleton = markdown_lib.markdown(skeleton, extensions=["tables", "sane_lists"])
        skeleton = re.sub(rf"<p>\s*((?:{word}\d+y\s*)+)</p>", r"\1", skeleton)
    # between elements a marker must be a comment, so table foster-parenting cannot move it
    pieces: list[str] = []
    pos = 0
    for match in marker.finditer(skeleton):
        before = skeleton[pos : match.start()]
        pieces.append(before)
        tail = skeleton[max(0, match.start() - 2000) : match.start()]
        if _INSIDE_TAG.search(marker.sub("", tail)):
            pieces.append(match.group(0))
        else:
            pieces.append(f"<!--{match.group(0)}-->")
        pos = match.end()
    pieces.append(skeleton[pos:])
    cleaned = nh3.clean(
        "".join(pieces),
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=False,
    )
    comment_marker = re.compile(rf"<!--\s*({word}\d+y)\s*-->")
    cleaned = comment_marker.sub(lambda m: m.group(1), cleaned)
    cleaned = re.sub(r"<!--.*?-->", "", cleaned, flags=re.DOTALL)  # the author's own comments
    out: list[Token | str] = []
    pos = 0
    seen: list[int] = []
    for match in marker.finditer(cleaned):
        out.append(cleaned[pos : match.start()])
        number = int(match.group(1))
        seen.append(number)
        tag = tags[number]
        if tag.kind == "var" and _URL_ATTR_START.search(
            cleaned[max(0, match.start() - 40) : match.start()]
        ):
            tag = Token("url", tag.value, tag.line, tag.raw)
        out.append(tag)
        pos = match.end()
    out.append(cleaned[pos:])
    missing = [tags[i] for i in range(len(tags)) if i not in set(seen)]
    if missing and any(t.kind not in ("var", "report", "rubric") for t in missing):
        lost = missing[0]
        raise TemplateError(
            _(
                "“%(tag)s” sits inside HTML that is not allowed (scripts, event handlers); remove it."
            )
            % {"tag": lost.raw},
            lost.line,
        )
    return out


_BLOCK_END = re.compile(r"</(p|div|li|tr|h[1-6]|blockquote|pre|table|ul|ol)>", re.IGNORECASE)


def html_to_text(html: str) -> str:
    """A readable plain-text version of sanitized HTML (for text + HTML emails)."""
    text = re.sub(r"<br\s*/?>", "\n", html, flags=re.IGNORECASE)
    text = re.sub(
        r'<a\s[^>]*href="([^"]*)"[^>]*>(.*?)</a>',
        lambda m: m.group(2) if m.group(2) == m.group(1) else f"{m.group(2)} ({m.group(1)})",
        text,
        flags=re.IGNORECASE | re.DOTALL,
    )
    text = re.sub(r"<li[^>]*>", "- ", text, flags=re.IGNORECASE)
    text = re.sub(r"</t[dh]>", "\t", text, flags=re.IGNORECASE)
    text = _BLOCK_END.sub("\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = html_lib.unescape(text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- compiling ---------------------------------------------------------------------------


@dataclass
class CompiledTemplate:
    """A template compiled once; :meth:`render` per row is cheap."""

    source: str
    text_format: str
    var_names: dict[str, str]  # placeholder -> column name
    condition_names: dict[str, str]  # placeholder -> condition name
    reports: list[tuple[str, ...]] = field(default_factory=list)  # r<i> -> columns
    uses_rubric: bool = False
    constants: dict[str, Any] = field(default_factory=dict)  # attributes, pre-formatted
    tz: dt.tzinfo | None = None
    _render: Callable[[dict[str, Any]], str] | None = None
    _text_render: Callable[[dict[str, Any]], str] | None = None

    @property
    def columns_used(self) -> set[str]:
        used = set(self.var_names.values())
        for names in self.reports:
            used.update(names)
        return used

    def _context(
        self,
        values: Mapping[str, Any],
        conditions: Mapping[str, bool],
        inserts: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        ctx = self.constants.copy()
        tz = self.tz
        get = values.get
        if self.text_format == "json":
            for key, name in self.var_names.items():
                ctx[key] = Markup(_json_value(get(name), tz))
        else:
            for key, name in self.var_names.items():
                value = get(name)
                if type(value) is str:
                    ctx[key] = value
                else:
                    ctx[key] = format_value(value, tz)
        if self.condition_names:
            truth = conditions.get
            for key, name in self.condition_names.items():
                ctx[key] = truth(name) is True
        if self.reports or self.uses_rubric:
            inserts = inserts or {}
            for i in range(len(self.reports)):
                ctx[f"r{i}"] = Markup(inserts.get(f"r{i}", ""))
            if self.uses_rubric:
                ctx["rb"] = Markup(inserts.get("rubric", ""))
        return ctx

    def render(
        self,
        values: Mapping[str, Any],
        conditions: Mapping[str, bool] | None = None,
        inserts: Mapping[str, str] | None = None,
    ) -> str:
        """The text for one row. ``values`` by column name, ``conditions`` by condition
        name; ``inserts`` holds already-safe markup for ``r<i>`` report tags and ``rubric``."""
        assert self._render is not None
        return self._render(self._context(values, conditions or {}, inserts))

    def render_text(
        self,
        values: Mapping[str, Any],
        conditions: Mapping[str, bool] | None = None,
        inserts: Mapping[str, str] | None = None,
    ) -> str:
        """A plain-text version (HTML and Markdown templates; same text otherwise)."""
        if self._text_render is None:
            return self.render(values, conditions, inserts)
        return self._text_render(self._context(values, conditions or {}, inserts))


def _resolve_tz(tz: str | dt.tzinfo | None) -> dt.tzinfo | None:
    if tz is None or isinstance(tz, dt.tzinfo):
        return tz
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def compile_template(
    text: str,
    *,
    columns: Iterable[str],
    attributes: Mapping[str, Any] | None = None,
    conditions: Iterable[str] = (),
    text_format: str = "html",
    autoescape: bool = True,
    time_zone: str | dt.tzinfo | None = None,
    allow_reports: bool = True,
    allow_rubric: bool = True,
) -> CompiledTemplate:
    """Check and compile ``text``; raise :class:`TemplateError` naming the line at fault.

    ``text_format``: ``html`` (sanitized, autoescaped), ``markdown`` (→ HTML, then as
    html), ``text`` (no escaping) or ``json`` (values JSON-encoded)."""
    attributes = dict(attributes or {})
    column_set = set(columns)
    condition_set = set(conditions)
    tokens = tokenize(text or "")
    tz = _resolve_tz(time_zone)
    compiled = CompiledTemplate(
        source=text, text_format=text_format, var_names={}, condition_names={}, tz=tz
    )
    keys: dict[tuple[str, str], str] = {}

    def key_for(kind: str, name: str) -> str:
        if (kind, name) not in keys:
            prefix = {"attr": "a", "var": "v", "cond": "c"}[kind]
            keys[(kind, name)] = f"{prefix}{sum(1 for k in keys if k[0] == kind)}"
        return keys[(kind, name)]

    # validate names and nesting on the tokens as written (lines are exact here)
    depth: list[tuple[Token, bool]] = []  # (if token, else seen)
    for token in tokens:
        if token.kind == "var":
            if token.value in attributes:
                compiled.constants[key_for("attr", token.value)] = None
            elif token.value in column_set:
                compiled.var_names[key_for("var", token.value)] = token.value
            else:
                raise TemplateError(_unknown_name(token.value), token.line)
        elif token.kind in ("if", "elif"):
            if token.value not in condition_set:
                raise TemplateError(
                    _("There is no condition named “%(name)s” in this action.")
                    % {"name": token.value},
                    token.line,
                )
            if token.kind == "elif" and (not depth or depth[-1][1]):
                raise TemplateError(_("{% elif %} without an open {% if %}."), token.line)
            if token.kind == "if":
                depth.append((token, False))
            compiled.condition_names[key_for("cond", token.value)] = token.value
        elif token.kind == "else":
            if not depth or depth[-1][1]:
                raise TemplateError(_("{% else %} without an open {% if %}."), token.line)
            depth[-1] = (depth[-1][0], True)
        elif token.kind == "endif":
            if not depth:
                raise TemplateError(_("{% endif %} without an open {% if %}."), token.line)
            depth.pop()
        elif token.kind == "report":
            if not allow_reports:
                raise TemplateError(_("Report tags belong in email and JSON reports."), token.line)
            for name in token.names:
                if name not in column_set:
                    raise TemplateError(
                        _("The report names “%(name)s”, which is not a column.") % {"name": name},
                        token.line,
                    )
        elif token.kind == "rubric" and not allow_rubric:
            raise TemplateError(_("The rubric tag belongs in rubric actions."), token.line)
    if depth:
        raise TemplateError(_("{% if %} is never closed with {% endif %}."), depth[-1][0].line)

    tz_local = tz
    for (kind, name), key in keys.items():
        if kind == "attr":
            value = attributes[name]
            compiled.constants[key] = (
                Markup(_json_value(value, tz_local))
                if text_format == "json"
                else format_value(value, tz_local)
            )

    if text_format in ("html", "markdown"):
        pieces = _sanitize_with_markers(tokens, markdown=text_format == "markdown")
        escape_values = autoescape
    else:
        pieces = [t.value if t.kind == "text" else t for t in tokens]
        escape_values = False  # plain text is not HTML; JSON values are encoded per value
    source = _jinja_source(pieces, keys, compiled)
    compiled._render = _compile_jinja(source, escape_values)
    if text_format in ("html", "markdown"):
        text_pieces = _text_pieces(pieces)
        compiled._text_render = _compile_jinja(_jinja_source(text_pieces, keys, compiled), False)
    return compiled


def _unknown_name(name: str) -> str:
    if any(ch in name for ch in "|.()[]"):
        return _(
            "“%(name)s” is not a column or attribute. Templates insert names only: filters,"
            " attribute access and calls are not allowed."
        ) % {"name": name}
    return _("There is no column or attribute named “%(name)s”.") % {"name": name}


def _text_pieces(pieces: list[Token | str]) -> list[Token | str]:
    """The HTML pieces converted to plain text, the tags kept between them."""
    word = f"clt{secrets.token_hex(6)}x"
    joined: list[str] = []
    tags: list[Token] = []
    for piece in pieces:
        if isinstance(piece, str):
            joined.append(piece)
        else:
            joined.append(f"{word}{len(tags)}y")
            tags.append(piece)
    text = html_to_text("".join(joined))
    out: list[Token | str] = []
    pos = 0
    for match in re.finditer(rf"{word}(\d+)y", text):
        out.append(text[pos : match.start()])
        tag = tags[int(match.group(1))]
        out.append(Token("var", tag.value, tag.line, tag.raw) if tag.kind == "url" else tag)
        pos = match.end()
    out.append(text[pos:])
    return out


def _jinja_source(
    pieces: list[Token | str], keys: dict[tuple[str, str], str], compiled: CompiledTemplate
) -> str:
    parts: list[str] = []
    report_index = 0
    for piece in pieces:
        if isinstance(piece, str):
            for opener in _OPENERS:
                if opener in piece:
                    raise TemplateError(
                        _("The text contains “%(opener)s” outside a tag; remove it.")
                        % {"opener": opener}
                    )
            if piece:
                parts.append("{% raw %}" + piece + "{% endraw %}")
            continue
        kind, name = piece.kind, piece.value
        if kind in ("var", "url"):
            key = keys.get(("attr", name)) or keys[("var", name)]
            parts.append("{{ " + key + ("|safe_url }}" if kind == "url" else " }}"))
        elif kind in ("if", "elif"):
            parts.append("{% " + kind + " " + keys[("cond", name)] + " %}")
        elif kind in ("else", "endif"):
            parts.append("{% " + kind + " %}")
        elif kind == "report":
            if report_index >= len(compiled.reports):
                compiled.reports.append(piece.names)
            parts.append("{{ r" + str(report_index) + " }}")
            report_index += 1
        elif kind == "rubric":
            compiled.uses_rubric = True
            parts.append("{{ rb }}")
    return "".join(parts)


def _compile_jinja(source: str, autoescape: bool) -> Callable[[dict[str, Any]], str]:
    try:
        template = _ENVS[autoescape].from_string(source)
    except TemplateSyntaxError as exc:  # pragma: no cover - our own source is always valid
        raise TemplateError(_("The template could not be compiled: %(e)s") % {"e": exc}) from exc
    root = template.root_render_func
    new_context = template.new_context
    concat = "".join

    def render(ctx: dict[str, Any]) -> str:
        # Template.render() minus a copy of the context and the (empty) globals merge
        return concat(root(new_context(ctx, shared=True)))

    return render


def escape_html(value: Any) -> str:
    return str(escape(value))
