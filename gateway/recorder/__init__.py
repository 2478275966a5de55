"""Recording: the recorder consumer, segment files, and reading fragmented MP4."""
