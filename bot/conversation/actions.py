"""The fixed sets of actions and conditions a flow file may name, and what each means.

A flow names actions under `do:`; the engine records them as effects of the
turn, and the turn runner carries them out inside the turn's transaction
(its handlers, one per action, are in `bot.runtime.effects`). A transition may
name a condition under `if:` and a state to go to instead under `else:`; the
engine asks the condition (implemented beside the handlers) before it moves.
Nothing outside these tables can be called from a flow file.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    "request_consent": "remember that the opt-in notice was shown: when, law, language, policy",
    "grant_consent": "record marketing consent; only after an explicit yes to a shown notice",
    "revoke_consent": "revoke marketing consent and stop business-initiated messages (STOP)",
    "decline_consent": (
        "record a no to the opt-in: no marketing consent, any given before withdrawn "
        "(business messages other than marketing are not stopped: that is STOP)"
    ),
    "end_handoff": "a person waiting for staff went back to the assistant (audited)",
    "show_data": "send a readable summary of everything held about the person",
    "export_data": "send a complete machine-readable copy (JSON) as a document",
    "erase_data": "erase the person (crypto-shredding), keep a suppression entry",
    "set_language": "keep the chosen language (from a `language.xx` row)",
    "set_residence": "keep the stated residence (from a `residence.XX` row or typed text)",
    "handoff": "hand the conversation to a human; the bot stays quiet but for privacy words",
    "record_correction": (
        "keep the typed text as a correction request: one of the person's messages (sealed, "
        "category `support`, for the privacy team), audited without the text"
    ),
}


CONDITIONS: dict[str, str] = {
    "consent_requested": (
        "the opt-in notice was shown to this person and the state's `expires` has not "
        "passed since (so a late or stray yes never records consent)"
    ),
    "residence_understood": "the row tapped or the text typed names a country the bot knows",
}
