"""What a centre releases, the noise it adds, what it books and what it can prove."""
