"""Stage 6, publish: survivor folders with lineage cards, the results tables, exports and the Hub push."""
