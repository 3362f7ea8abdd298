"""LLM backends behind one Protocol (base.LLMBackend): llama.cpp in-process, any OpenAI-compatible
server (vLLM), transformers + PEFT, a scripted double, an ensemble. factory.make_backend picks one.

May import config only."""
