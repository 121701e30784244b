"""The pure domain core: records, rulebook, scoring, tiers, commission, payouts, ranking.

Nothing in this package reads or writes files or imports an Excel library; adapters around it
(files, live Excel, the command line) hand it records and take its results.
"""
