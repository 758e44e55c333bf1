"""Where training data comes from (sources) and how it reaches the devices (modes)."""
