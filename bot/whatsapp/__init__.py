"""WhatsApp Cloud API: webhook events, Graph API client and outbound messages."""
