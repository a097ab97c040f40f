"""What-if: a row edited on its raw columns and explained exactly; the smallest changes that flip a decision."""
