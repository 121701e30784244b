"""xlsales: big-account sales scorecard, commission and ranking engine."""

__version__ = "0.1.0"
