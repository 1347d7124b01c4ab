"""Policy: the limits and rules every turn and every send must respect."""
