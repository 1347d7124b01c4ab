"""`/api/v1`: the support and privacy API, for staff with bearer tokens (`bot.support.staff`)."""
