"""What the service did and how well: metrics, stats, the decision log and the monitor that feeds them."""
