"""The console's words that come from data (statuses, audit events, node states): marked
for the catalogue here (``N_``), translated where a page shows them (``_()``)."""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it now."""
    return message


STATUS = {
    "running": N_("running"),
    "finished": N_("finished"),
    "stopped": N_("stopped early"),
    "failed": N_("failed"),
}

NODE_STATUS = {
    "online": N_("connected"),
    "offline": N_("silent"),
    "registered": N_("registered, never connected"),
    "unregistered": N_("unregistered"),
}

EVENTS = {
    "run_started": N_("run started"),
    "run_resumed": N_("run resumed"),
    "run_finished": N_("run finished"),
    "run_stopped": N_("run stopped"),
    "centres_connected": N_("centres connected"),
    "instructions_sent": N_("instructions sent"),
    "update_accepted": N_("update accepted"),
    "update_rejected": N_("update rejected"),
    "evaluation_rejected": N_("evaluation rejected"),
    "centre_refused": N_("centre refused"),
    "centre_absent": N_("centre absent"),
    "round_aggregated": N_("round aggregated"),
    "checkpoint_saved": N_("checkpoint saved"),
    "centre_records": N_("centre's records"),
}

PHASES = {"train": N_("training"), "evaluate": N_("evaluation")}

# Equity rows: the audit's attribute names as the pages name them.
ATTRIBUTES = {
    "sex": N_("sex"),
    "ehdaa": N_("EHDAA (intervention plan)"),
    "indigenous": N_("Indigenous"),
    "immigrant_generation": N_("immigrant generation"),
    "home_language": N_("home language"),
    "imse_band": N_("IMSE band (school socio-economic index)"),
    "region": N_("region"),
}

GAPS = {
    "equal_opportunity_gap": N_("equal-opportunity gap (true-positive rates)"),
    "fpr_gap": N_("false-positive rate gap"),
    "calibration_gap": N_("calibration gap"),
    "auc_gap": N_("ROC AUC gap"),
}

# Baselines of a finished run, in summary.json.
BASELINES = {
    "auc_centralized": N_("centralised training without DP"),
    "auc_local_only": N_("each centre alone"),
    "auc_environment_only": N_("school indices only"),
    "auc_pooled_exact": N_("federated, without evaluation noise"),
}
