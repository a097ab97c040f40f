"""What leaves the engine for people: figures, plain-language summaries, the HTML report, exported tables."""
