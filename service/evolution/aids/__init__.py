"""Optional search features where the engine calls them: novelty, scratchpad, island resets.

May import what evolution/ may, and evolution's own archive and ledger."""
