// The scale form's fields to the API's body (POST /api/v1/services/{name}/scale).

export function parseScaleForm(fields: { instances: string; hold: string; reason: string }):
  | { body: { instances: number; for?: string; reason?: string } }
  | { error: string } {
  const instances = Number(fields.instances.trim());
  if (!Number.isInteger(instances) || instances < 1) {
    return { error: 'Instances: a whole number of at least 1.' };
  }
  const body: { instances: number; for?: string; reason?: string } = { instances };
  if (fields.hold.trim()) {
    if (!/^\d+\s*(s|m|h|d)$/.test(fields.hold.trim())) {
      return { error: 'Hold for: a duration such as 30m, 2h or 1d.' };
    }
    body.for = fields.hold.trim();
  }
  if (fields.reason.trim()) body.reason = fields.reason.trim();
  return { body };
}

/** "3 → 5" with the direction, for a decision row. */
export function change(from: number, to: number): string {
  if (from === to) return `${from} (unchanged)`;
  return `${from} → ${to} (${to > from ? 'up' : 'down'} ${Math.abs(to - from)})`;
}
