"""Where ticks and bars come from: simulator, socket feed, files, replay."""
