"""Narrative XHTML checks: FHIR R4B invariants txt-1 and txt-2 on Narrative.div.

Clients render Narrative.div as HTML, and fhir.resources accepts any string there, so without
this check a resource is a stored cross-site-scripting payload waiting for a browser. The rules
come from the R4B specification (narrative.html and the Narrative StructureDefinition):

* xhtml datatype / narrative.html: the div is well-formed XML whose single root is ``div`` in
  the XHTML namespace (``<div xmlns="http://www.w3.org/1999/xhtml">``). In JSON it "SHALL be
  encoded so that the characters between the first '>' and the last '<' delimiters is the
  content of the <div> element", so an XML declaration, DOCTYPE, comment or processing
  instruction before or after the div is illegal.
* Entities: "the XHTML is contained in general XML so there is no support for HTML entities like
  &nbsp; or &copy; etc. Unicode characters SHALL be used instead. Unicode &#160; substitutes for
  &nbsp;". So only the five XML entities (&amp; &lt; &gt; &quot; &apos;) and character
  references are accepted; &nbsp; and friends are reported (never a crash), with that advice.
* txt-1: "only the basic html formatting elements and attributes described in chapters 7-11
  (except section 4 of chapter 9) and 15 of the HTML 4.0 standard, <a> elements (either name
  or href), images and internally contained style attributes". The element and attribute
  lists below are copied from txt-1's XPath in the R4B StructureDefinition for Narrative.
  One deliberate loosening: xml:lang and xml:space (attributes of the XML namespace itself,
  inert in a browser) are accepted too, though the XPath's name() test would refuse them.
* narrative.html: "The XHTML content SHALL NOT contain a head, a body element, external
  stylesheet references, deprecated elements, scripts, forms, base/link/xlink, frames,
  iframes, objects or event related attributes (e.g. onClick). This is to ensure [...] that
  there is no active content." From "no active content" come the URL checks: href, src,
  cite and longdesc may not use a script-capable scheme (javascript:, vbscript:, ...), and
  data: URLs are accepted only as images (img src, CSS url()), which narrative.html
  recommends ("SHOULD always be embedded as a data: url"). The style attribute may not use
  CSS that runs code or pulls in stylesheets (expression(), behavior, -moz-binding, @import).
* txt-2: "The narrative SHALL have some non-whitespace content": a non-whitespace text node
  or an img with a src (the XPath: ``descendant::text()[normalize-space(.)!=''] or
  descendant::h:img[@src]``).
* Parser differentials: the client parses the string as HTML, not XML, so XML constructs
  that an HTML parser reads differently are rejected even though the spec does not name
  them: CDATA sections (HTML ends a "bogus comment" at the first '>', so
  ``<![CDATA[ x><img src=x onerror=...>]]>`` becomes a live element) and comments that
  begin with '>' or '->' (HTML closes ``<!-->`` at once). Processing instructions are not
  XHTML content and are refused too.

Parsing is done by expat (stdlib), streaming, with no DTD processing at all: a DOCTYPE stops
the parse as soon as it starts (before any internal subset is read), entity declarations are
refused, parameter entities are never parsed and no external entity handler exists, so
entity-expansion ("billion laughs") and external-entity attacks have nothing to work with.
Undeclared entities are then a well-formedness error, reported as above. Parsing stops at
the first well-formedness error, as XML requires; other problems are all reported, up to
_MAX_PER_DIV per narrative.

Residual risk for renderers: ids and names are allowed (the spec allows them), so a narrative
can still clobber DOM globals, and external images and CSS url()s can still be fetched.
Clients should render narratives in a sandboxed frame or behind their own sanitizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

__all__ = ["NarrativeViolation", "check_div", "check_narratives"]

XHTML_NS = "http://www.w3.org/1999/xhtml"
_XML_NS = "http://www.w3.org/XML/1998/namespace"
_XLINK_NS = "http://www.w3.org/1999/xlink"

# txt-1's XPath, R4B StructureDefinition-Narrative.
_ALLOWED_ELEMENTS = frozenset(
    {
        "a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code",
        "col", "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "i", "img", "li", "ol", "p", "pre", "q", "samp", "small", "span",
        "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt",
        "ul", "var",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES = frozenset(
    {
        "abbr", "accesskey", "align", "alt", "axis", "bgcolor", "border", "cellhalign",
        "cellpadding", "cellspacing", "cellvalign", "char", "charoff", "charset", "cite",
        "class", "colspan", "compact", "coords", "dir", "frame", "headers", "height", "href",
        "hreflang", "hspace", "id", "lang", "longdesc", "name", "nowrap", "rel", "rev",
        "rowspan", "rules", "scope", "shape", "span", "src", "start", "style", "summary",
        "tabindex", "title", "type", "valign", "value", "vspace", "width",
    }
)  # fmt: skip
_ALLOWED_XML_ATTRIBUTES = frozenset({"lang", "space"})  # xml:lang, xml:space
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc"})

# Why a well-known element is refused, in the words of narrative.html.
_FORBIDDEN_WHY = {
    **dict.fromkeys(("script", "noscript"), "scripts"),
    **dict.fromkeys(
        (
            "form",
            "input",
            "button",
            "select",
            "option",
            "optgroup",
            "textarea",
            "label",
            "fieldset",
            "legend",
            "isindex",
            "datalist",
            "output",
            "keygen",
        ),
        "forms",
    ),
    **dict.fromkeys(("base", "link", "meta"), "base/link"),
    "style": "stylesheets (only style attributes are allowed)",
    **dict.fromkeys(("frame", "frameset", "noframes"), "frames"),
    "iframe": "iframes",
    **dict.fromkeys(("object", "embed", "applet", "param"), "objects"),
    **dict.fromkeys(("html", "head", "body", "title"), "a head or a body"),
    **dict.fromkeys(
        ("font", "center", "u", "s", "strike", "basefont", "dir", "menu", "marquee", "blink"),
        "deprecated elements",
    ),
}

# URL schemes whose navigation or loading runs script in the page.
_SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "livescript", "mocha"})
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*:")
# CSS that runs code or imports stylesheets, looked for after comments, escapes and
# whitespace are removed and the text lower-cased.
_CSS_ACTIVE = ("expression(", "behavior:", "behaviour:", "-moz-binding", "@import")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_XML_WHITESPACE = " \t\r\n"
_PREDEFINED_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})

_MAX_PER_DIV = 10
_NESTING_TYPES = frozenset({"Bundle", "Parameters", "Composition", "EvidenceReport"})


@dataclass(frozen=True, slots=True)
class NarrativeViolation:
    expression: str  # FHIRPath of the div, e.g. "Bundle.entry[2].resource.text.div"
    message: str


def check_narratives(resource_type: str, body: dict[str, Any]) -> list[NarrativeViolation]:
    """Every txt-1/txt-2 problem in the resource's narratives and those of nested resources.

    Looks at text.div of the resource, its contained resources, Bundle.entry.resource and
    entry.response.outcome, Parameters.parameter(.part)*.resource, and the section narratives
    of Composition and EvidenceReport, recursively. Anything that is not shaped as FHIR
    expects (a "contained" that is not a list, ...) is skipped: structural validation reports that.
    """
    out: list[NarrativeViolation] = []
    _walk_resource(resource_type, body, resource_type, out)
    return out


def _walk_resource(
    resource_type: Any, body: dict[str, Any], path: str, out: list[NarrativeViolation]
) -> None:
    text = body.get("text")
    if text is not None:
        _check_text(text, f"{path}.text.div", out)
    contained = body.get("contained")
    if contained and isinstance(contained, list):
        base = f"{path}.contained"
        for i, child in enumerate(contained):
            _visit(child, out, base, i)
    if resource_type not in _NESTING_TYPES:
        return
    if resource_type == "Bundle":
        entries = body.get("entry")
        base = f"{path}.entry"
        for i, entry in enumerate(entries if isinstance(entries, list) else ()):
            if isinstance(entry, dict):
                _visit(entry.get("resource"), out, base, i, ".resource")
                response = entry.get("response")
                if isinstance(response, dict):
                    _visit(response.get("outcome"), out, base, i, ".response.outcome")
    elif resource_type == "Parameters":
        _walk_parameters(body.get("parameter"), f"{path}.parameter", out)
    else:  # Composition, EvidenceReport: section.text is a Narrative, sections nest
        _walk_sections(body.get("section"), f"{path}.section", out)


def _visit(
    child: Any, out: list[NarrativeViolation], base: str, index: int, tail: str = ""
) -> None:
    # A nested resource with no narrative and nothing nested in it costs three dict lookups;
    # its FHIRPath is only built when there is something to look at.
    if isinstance(child, dict) and (
        child.get("text") is not None
        or child.get("contained")
        or child.get("resourceType") in _NESTING_TYPES
    ):
        _walk_resource(child.get("resourceType"), child, f"{base}[{index}]{tail}", out)


def _walk_parameters(parameters: Any, path: str, out: list[NarrativeViolation]) -> None:
    if not isinstance(parameters, list):
        return
    for i, parameter in enumerate(parameters):
        if isinstance(parameter, dict):
            resource = parameter.get("resource")
            if resource is not None:
                _visit(resource, out, path, i, ".resource")
            part = parameter.get("part")
            if part:
                _walk_parameters(part, f"{path}[{i}].part", out)


def _walk_sections(sections: Any, path: str, out: list[NarrativeViolation]) -> None:
    if not isinstance(sections, list):
        return
    for i, section in enumerate(sections):
        if isinstance(section, dict):
            text = section.get("text")
            if text is not None:
                _check_text(text, f"{path}[{i}].text.div", out)
            inner = section.get("section")
            if inner:
                _walk_sections(inner, f"{path}[{i}].section", out)


def _check_text(text: Any, expression: str, out: list[NarrativeViolation]) -> None:
    if not isinstance(text, dict) or "div" not in text:
        return  # not a Narrative at all, or div missing: structural validation says so
    div = text["div"]
    if not isinstance(div, str):
        out.append(NarrativeViolation(expression, "Narrative.div must be a string of XHTML"))
        return
    out.extend(NarrativeViolation(expression, message) for message in check_div(div))


def check_div(div: str) -> list[str]:
    """The problems in one Narrative.div string, as messages; empty when it is acceptable."""
    return _DivChecker(div).run()


class _Stop(Exception):
    """Raised inside expat handlers to end the parse at once."""


class _DivChecker:
    __slots__ = ("data", "depth", "has_content", "no_namespace_root", "parser", "problems")

    def __init__(self, div: str) -> None:
        # surrogatepass: a lone surrogate becomes bytes expat rejects, not an exception here.
        self.data = div.encode("utf-8", "surrogatepass")
        self.problems: list[str] = []
        self.depth = 0
        self.has_content = False
        self.no_namespace_root = False
        # The encoding argument overrides any encoding an XML declaration claims.
        parser = expat.ParserCreate(encoding="utf-8", namespace_separator=" ")
        parser.ordered_attributes = True
        parser.buffer_text = True
        # No DTD processing of any kind: parameter entities are never parsed, a DOCTYPE or an
        # entity declaration ends the parse, and with no ExternalEntityRefHandler nothing
        # external is ever read.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity_decl
        parser.XmlDeclHandler = self._xml_decl
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.CommentHandler = self._comment
        parser.ProcessingInstructionHandler = self._pi
        parser.StartCdataSectionHandler = self._cdata
        self.parser = parser

    def run(self) -> list[str]:
        try:
            self.parser.Parse(self.data, True)
        except _Stop:
            return self.problems
        except expat.ExpatError as exc:
            self.problems.append(self._not_well_formed(exc))
            return self.problems
        if not self.has_content:
            self.problems.append(
                "txt-2: the narrative SHALL have some non-whitespace content "
                "(text, or an img with a src)"
            )
        return self.problems

    # -- reporting

    def _where(self) -> str:
        p = self.parser
        return f"line {p.CurrentLineNumber}, column {p.CurrentColumnNumber + 1}"

    def _report(self, message: str) -> None:
        self.problems.append(f"{message} ({self._where()})")
        if len(self.problems) >= _MAX_PER_DIV:
            self.problems.append(
                f"further problems in this narrative are not listed (limit {_MAX_PER_DIV})"
            )
            raise _Stop

    def _not_well_formed(self, exc: expat.ExpatError) -> str:
        where = f"line {exc.lineno}, column {exc.offset + 1}"
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]:
            name = self._undefined_entity(self.parser.ErrorByteIndex)
            shown = f"the entity &{name};" if name else "an undefined entity"
            return (
                f"Narrative.div uses {shown} ({where}), which XML does not define: narrative "
                "XHTML has no support for HTML entities such as &nbsp; or &copy;; use the "
                "Unicode character or a character reference instead (&#160; for &nbsp;)"
            )
        if not self.data.strip():
            return "Narrative.div is empty; it must be a <div> element with XHTML content"
        return f"Narrative.div is not well-formed XHTML: {expat.ErrorString(exc.code)} ({where})"

    def _undefined_entity(self, index: int) -> str | None:
        # expat points at the reference itself, or at the start tag holding it in an
        # attribute value; the first non-XML entity reference from there is the culprit.
        start = max(index, 0)
        window = self.data[start : start + 8192]
        for piece in window.split(b"&")[1:]:
            name, semicolon, _ = piece.partition(b";")
            if semicolon and name and not name.startswith(b"#") and len(name) <= 64:
                text = name.decode("utf-8", "replace")
                if text not in _PREDEFINED_ENTITIES:
                    return text
        return None

    # -- expat handlers

    def _doctype(self, *_: object) -> None:
        self.problems.append(
            "Narrative.div must not contain a DOCTYPE or any DTD: it is an XHTML fragment "
            f"starting with <div> ({self._where()}); DTDs and entity declarations are refused"
        )
        raise _Stop

    def _entity_decl(self, *_: object) -> None:  # unreachable while DOCTYPE stops the parse
        self.problems.append(f"Narrative.div must not declare entities ({self._where()})")
        raise _Stop

    def _xml_decl(self, *_: object) -> None:
        self._report(
            "Narrative.div must start with <div>: an XML declaration (<?xml ...?>) is not "
            "allowed; the characters between the first '>' and the last '<' must be the "
            "content of the div"
        )

    def _start(self, name: str, attributes: list[str]) -> None:
        namespace, _, local = name.rpartition(" ")
        depth = self.depth
        self.depth = depth + 1
        if depth == 0:
            if namespace == "" and local == "div":
                # Reported once here; its unqualified descendants are not reported again.
                self.no_namespace_root = True
                self._report(
                    f'txt-1: the root <div> must be in the XHTML namespace: xmlns="{XHTML_NS}"'
                )
            elif namespace != XHTML_NS or local != "div":
                self._report(
                    f"txt-1: the root element must be a <div> in the XHTML namespace, "
                    f"not {_describe(namespace, local)}"
                )
        elif namespace != XHTML_NS and not (namespace == "" and self.no_namespace_root):
            self._report(
                f"txt-1: element {_describe(namespace, local)} is not in the XHTML namespace; "
                "only XHTML elements are allowed"
            )
            return  # a refused element's attributes go with it: not reported one by one
        if local not in _ALLOWED_ELEMENTS:
            why = _FORBIDDEN_WHY.get(local.lower())
            detail = (
                f"narrative XHTML SHALL NOT contain {why}"
                if why
                else "it is not one of the basic HTML formatting elements allowed"
            )
            self._report(f"txt-1: element <{local}> is not allowed: {detail}")
            return
        for i in range(0, len(attributes), 2):
            self._attribute(local, attributes[i], attributes[i + 1])

    def _attribute(self, element: str, name: str, value: str) -> None:
        namespace, _, attr = name.rpartition(" ")
        if namespace:
            if namespace == _XML_NS and attr in _ALLOWED_XML_ATTRIBUTES:
                return
            if namespace == _XLINK_NS:
                self._report(
                    f"txt-1: attribute xlink:{attr} on <{element}> is not allowed: "
                    "narrative XHTML SHALL NOT contain xlink"
                )
            else:
                self._report(
                    f"txt-1: attribute {attr!r} in namespace {namespace} on <{element}> is not "
                    "allowed"
                )
            return
        if attr[:2].lower() == "on":
            self._report(
                f"txt-1: attribute {attr!r} on <{element}> is not allowed: narrative XHTML "
                "SHALL NOT contain event related attributes (no active content)"
            )
            return
        if attr not in _ALLOWED_ATTRIBUTES:
            self._report(f"txt-1: attribute {attr!r} on <{element}> is not allowed")
            return
        if attr in _URL_ATTRIBUTES:
            problem = _url_problem(value, image=(attr == "src"))
            if problem:
                self._report(f"txt-1: attribute {attr!r} on <{element}> {problem}")
        elif attr == "style":
            problem = _css_problem(value)
            if problem:
                self._report(f"txt-1: the style attribute on <{element}> {problem}")
        if attr == "src" and element == "img":
            self.has_content = True  # txt-2: descendant::h:img[@src]

    def _end(self, _name: str) -> None:
        self.depth -= 1

    def _text(self, data: str) -> None:
        if not self.has_content and self.depth > 0 and data.strip(_XML_WHITESPACE):
            self.has_content = True

    def _comment(self, data: str) -> None:
        if self.depth == 0:
            self._report("Narrative.div must start and end with its <div>: no comments outside it")
        elif data.startswith((">", "->")):
            self._report(
                "txt-1: a comment may not start with '>' or '->': HTML parsers end it there, "
                "so what follows would be rendered as markup"
            )

    def _pi(self, target: str, _data: str) -> None:
        self._report(f"txt-1: processing instructions (<?{target} ...?>) are not allowed")

    def _cdata(self) -> None:
        self._report(
            "txt-1: CDATA sections are not allowed: HTML parsers do not read them as text, "
            "so their content could be rendered as markup; escape the text instead"
        )


def _describe(namespace: str, local: str) -> str:
    return f"<{local}> (namespace {namespace})" if namespace else f"<{local}> (no namespace)"


def _url_problem(value: str, *, image: bool) -> str | None:
    # Browsers drop ASCII whitespace and control characters inside and around a scheme
    # ("java\tscript:"), and schemes are case-insensitive; XML has already decoded character
    # references, exactly as the HTML parser in the client will.
    compact = _SPACE_OR_CONTROL.sub("", value).lower()
    match = _SCHEME.match(compact)
    if match is None:
        return None  # relative reference or fragment
    scheme = match.group()[:-1]
    if scheme in _SCRIPT_SCHEMES:
        return f"uses the {scheme}: scheme: narrative XHTML SHALL NOT contain scripts"
    if scheme == "data":
        if image and compact.startswith("data:image/"):
            return None
        return (
            "uses a data: URL: only images may be embedded as data: URLs (img src), "
            "since other data: content can be active"
        )
    return None


_CSS_URL = re.compile(r"url\(([^)]*)")
MAX_STYLE_LENGTH = 10_000


def _css_problem(value: str) -> str | None:
    if len(value) > MAX_STYLE_LENGTH:
        return f"is longer than {MAX_STYLE_LENGTH} characters"
    css = _CSS_COMMENT.sub("", value) if "/*" in value else value
    if "\\" in css:
        css = _CSS_ESCAPE.sub(_css_unescape, css)
    compact = _SPACE_OR_CONTROL.sub("", css).lower()
    for token in _CSS_ACTIVE:
        if token in compact:
            return (
                f"uses {token.rstrip('(:')}: styles SHALL NOT run code or reference external "
                "stylesheets"
            )
    # One pass: each url( runs to the next ")" (or the end), so nested or unclosed url(
    # cannot make the scan quadratic.
    for match in _CSS_URL.finditer(compact):
        problem = _url_problem(match.group(1).strip("'\""), image=True)
        if problem:
            return f"has a url() that {problem}"
    return None


def _css_unescape(match: re.Match[str]) -> str:
    hex_digits, char = match.groups()
    if hex_digits is None:
        return str(char)
    code = int(hex_digits, 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
