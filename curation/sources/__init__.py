"""Sources that read raw inputs into records: directories, git, GitHub exports, HF datasets."""
