// The deploy form's fields to the API's request body, with errors naming the field.

export interface DeployFields {
  version: string;
  canary: string;
  env: string;
  reason: string;
}

export interface DeployBody {
  version: string;
  canary?: string[];
  env?: Record<string, string>;
  reason?: string;
}

export function parseDeployForm(fields: DeployFields): { body: DeployBody } | { error: string } {
  const version = fields.version.trim();
  if (!version) return { error: 'Version: enter the version to roll out, e.g. v2.' };
  const body: DeployBody = { version };
  const canary = fields.canary.split(/[\s,]+/).filter(Boolean);
  for (const addr of canary) {
    if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):\d{1,5}$/.test(addr)) {
      return { error: `Canary addresses: "${addr}" is not an address with a port, e.g. 127.0.0.1:9003.` };
    }
  }
  if (canary.length) body.canary = canary;
  const env: Record<string, string> = {};
  const lines = fields.env.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const eq = line.indexOf('=');
    if (eq <= 0) return { error: `Environment, line ${i + 1}: write NAME=value.` };
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  if (lines.length) body.env = env;
  if (fields.reason.trim()) body.reason = fields.reason.trim();
  return { body };
}
