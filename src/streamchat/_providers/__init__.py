"""Private parts of `streamchat.providers`: request bodies and per-format stream readers."""
