"""The LLM narrator: CrewAI's `LLM` client on any OpenAI-compatible endpoint, streamed."""
