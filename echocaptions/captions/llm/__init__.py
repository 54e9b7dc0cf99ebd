"""The LLM tier: client (prompts, requests, retries, validation), answer cache, translation, vLLM server."""
