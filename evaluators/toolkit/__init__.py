"""What problem authors import: evolution strategies (ask/tell) and gymnasium rollouts.

Imports nothing else of evoforge."""
