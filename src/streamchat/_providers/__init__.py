"""Private parts of `streamchat.providers`: the registry, request bodies, one reader per format."""
