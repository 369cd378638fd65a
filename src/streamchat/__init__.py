"""streamchat: streamed LLM output as a first-class citizen of notebooks."""
