"""Privacy accounting and mechanisms: accountants, the secure release."""

#: The accountants a run may book with (``privacy.accountant``): names of Opacus's
#: accountants (``opacus.accountants.create_accountant``). "rdp", the default, is the
#: only Renyi one: the per-student filter (``accounting.filter_epsilon``) and the
#: discrete Gaussian's bound are argued in RDP, so a centre's floor refuses the others
#: unless its policy allows them (docs/PRIVACY.md). Adding one Opacus has: its name here,
#: its row in docs/reference/configuration*.md, a test (docs/ARCHITECTURE.md).
ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")
