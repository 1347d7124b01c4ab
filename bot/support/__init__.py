"""The support desk: staff and their tokens, and the handed-off conversations they serve."""
