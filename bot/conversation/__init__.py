"""Conversations: what the bot says back. Knows neither the database nor HTTP."""
