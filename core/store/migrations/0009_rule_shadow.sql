-- fleetcore 0009: shadow mode for quality rules (issue 21). A rule in
-- shadow mode (rules.mode = { "name" = "shadow" }) is evaluated and its
-- findings and statistics are stored, marked shadow: they do not count in
-- integrity scores or alerts. Existing rows are active rules' (default
-- false). rule_watermarks.shadow is the mode a rule version's rows were
-- last written in: when the mode of a version changes, the runner re-marks
-- that version's findings and statistics, so they always follow the mode.
ALTER TABLE findings ADD COLUMN shadow boolean NOT NULL DEFAULT false;
ALTER TABLE rule_stats ADD COLUMN shadow boolean NOT NULL DEFAULT false;
ALTER TABLE rule_watermarks ADD COLUMN shadow boolean NOT NULL DEFAULT false;
CREATE INDEX rule_stats_shadow_rule_idx ON rule_stats (rule, hour) WHERE shadow;
