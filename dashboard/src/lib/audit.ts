// The audit list's query: newest first, a page at a time (older pages by before_seq).

export function auditQuery(q: { subject: string; action: string; before: number | null; limit: number }): string {
  const params = new URLSearchParams({ order: 'desc', limit: String(q.limit) });
  if (q.subject.trim()) params.set('subject', q.subject.trim());
  if (q.action.trim()) params.set('action', q.action.trim());
  if (q.before !== null) params.set('before_seq', String(q.before));
  return `/api/v1/audit?${params}`;
}
