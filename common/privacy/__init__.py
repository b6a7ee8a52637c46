"""Privacy accounting and mechanisms: accountants, the secure release."""
