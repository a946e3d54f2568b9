"""The data contract shared by training and serving: the dataset spec and everything derived from it."""
