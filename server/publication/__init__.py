"""What the ministry publishes: each trained model's card and the public registry."""
