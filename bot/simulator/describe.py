"""How the chat page shows what the bot sent: a Graph API message body as a bubble.

Text, buttons, lists, documents (with a link to the file the fake received) and
templates, which show as their approved text from the registry, with the
parameters filled in and the footer, as the person's phone would show them.
"""

from __future__ import annotations

from typing import Any

from bot.policy.templates import Registry, TemplateRefused
from bot.simulator.fake_graph import SentMessage

MEDIA_PATH = "/simulator/api/media/"


def _text_of(part: Any) -> str | None:
    """`{"text": ...}` blocks (interactive body, header, footer) to their string."""
    value = part.get("text") if isinstance(part, dict) else None
    return value if isinstance(value, str) else None


def _list_rows(action: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for section in action.get("sections") or []:
        title = section.get("title") or ""
        for row in section.get("rows") or []:
            rows.append(
                {
                    "id": str(row.get("id", "")),
                    "title": str(row.get("title", "")),
                    "description": str(row.get("description") or ""),
                    "section": str(title),
                }
            )
    return rows


def _interactive(view: dict[str, Any], interactive: dict[str, Any]) -> None:
    """Fill in buttons or a list, plus body, header and footer, from `interactive`."""
    action = interactive.get("action") or {}
    view["text"] = _text_of(interactive.get("body")) or ""
    view["header"] = _text_of(interactive.get("header"))
    view["footer"] = _text_of(interactive.get("footer"))
    if interactive.get("type") == "button":
        view["kind"] = "buttons"
        view["buttons"] = [
            {"id": str(b["reply"].get("id", "")), "title": str(b["reply"].get("title", ""))}
            for b in action.get("buttons") or []
            if isinstance(b, dict) and isinstance(b.get("reply"), dict)
        ]
    elif interactive.get("type") == "list":
        view["kind"] = "list"
        view["list"] = {"button": str(action.get("button", "")), "rows": _list_rows(action)}
    else:
        view["text"] = view["text"] or f"[{interactive.get('type', 'interactive')} message]"


def _template_params(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p
        for component in template.get("components") or []
        if isinstance(component, dict) and component.get("type") == "body"
        for p in component.get("parameters") or []
        if isinstance(p, dict) and p.get("type") == "text"
    ]


def _template_text(template: dict[str, Any]) -> str:
    """A template the registry does not know: its name, language and parameters."""
    language = (template.get("language") or {}).get("code", "?")
    params = [str(p.get("text", "")) for p in _template_params(template)]
    shown = f"Template {template.get('name', '?')} ({language})"
    return shown + (": " + " | ".join(params) if params else "")


def _approved_text(registry: Registry, template: dict[str, Any]) -> tuple[str, str | None] | None:
    """The template as the person reads it (body filled in by the registry, and footer), or
    None when the registry has no such template, language or parameters."""
    spec = registry.get(str(template.get("name", "")))
    code = (template.get("language") or {}).get("code")
    if spec is None:
        return None
    language = next((lang for lang, v in spec.languages.items() if v.code == code), None)
    if language is None:
        return None
    given = _template_params(template)
    if all(isinstance(p.get("parameter_name"), str) for p in given):
        params = {str(p["parameter_name"]): str(p.get("text", "")) for p in given}
    else:  # positional parameters, in the registry's order
        params = {name: str(p.get("text", "")) for name, p in zip(spec.params, given, strict=False)}
    try:
        body = registry.render(spec.name, language, params)
    except TemplateRefused:
        return None
    return body, spec.languages[language].footer


def _template(view: dict[str, Any], template: dict[str, Any], registry: Registry | None) -> None:
    view["kind"] = "template"
    shown = _approved_text(registry, template) if registry is not None else None
    if shown is None:
        view["text"] = _template_text(template)
    else:
        view["text"], view["footer"] = shown


def describe(message: SentMessage, templates: Registry | None = None) -> dict[str, Any]:
    """A Graph API send body as the page and the terminal chat show it.

    Templates live at Meta; with the registry (`flows/templates.yaml`) they are shown as
    the person reads them, approved text and footer, else by name and parameters.
    """
    body = message.body
    kind = body.get("type")
    view: dict[str, Any] = {
        "index": message.index,
        "at": message.at,
        "kind": "other",
        "text": "",
        "buttons": [],
        "list": None,
        "header": None,
        "footer": None,
        "url": None,
    }
    if kind == "text":
        view["kind"] = "text"
        view["text"] = str((body.get("text") or {}).get("body", ""))
    elif kind == "interactive":
        _interactive(view, body.get("interactive") or {})
    elif kind == "template":
        _template(view, body.get("template") or {}, templates)
    elif kind == "document":
        doc = body.get("document") or {}
        view["kind"] = "document"
        view["text"] = str(doc.get("filename") or "document")
        view["footer"] = doc.get("caption")
        media_id = doc.get("id")
        if isinstance(media_id, str) and media_id.isdigit():
            view["url"] = MEDIA_PATH + media_id
    else:
        view["text"] = f"[{kind} message]"
    return view


# --------------------------------------------------------------------------- what the user sends
