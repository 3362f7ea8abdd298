"""Test-time RL of the mutation model: the engine's training hook, GRPO + LoRA, rollouts, rewards,
adapters and external trainer rounds. May import evolution/ and everything below it."""
