// Evaluates IAM authorization requests with @cloud-copilot/iam-simulate (see emulator/iam_check.py, which runs
// this with NODE_PATH at the package's install directory).
//   stdin:  {"policies": {"<role ARN>": [policy document, ...]}, "resource_policies": {"<ARN>": policy document},
//            "checks": [{"role", "action", "resource", "context", "resource_policy": "<ARN>" (optional)}]}
//   stdout: [{"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error", "identity": result,
//             "resource": result, "denied_by": [...], "nearest": [...], "error": "..."}], one per check, in order
'use strict';
const { runSimulation } = require('@cloud-copilot/iam-simulate');

// A statement's name in a report: its Sid, else its position in its policy.
function label(s) {
  const id = String((s.explain && s.explain.identifier) || s.policyId);
  return /^\d+$/.test(id) ? `statement #${id}` : id;
}

// Why an Allow statement that names the action does not apply: its resource or which condition failed.
function whyNot(s) {
  const explain = s.explain || {};
  if (!s.resourceMatch) return `${label(s)}: resource ${JSON.stringify(explain.resources)} does not match`;
  const failed = (explain.conditions || []).filter((c) => !c.matches)
    .map((c) => `${c.operator} ${c.conditionKeyValue} ${JSON.stringify(c.values)} `
      + `(request: ${JSON.stringify(c.resolvedConditionKeyValue ?? null)})`);
  return `${label(s)}: condition ${failed.join('; ') || 'does not match'}`;
}

async function evaluate(policies, resourcePolicies, check) {
  const identityPolicies = (policies[check.role] || []).map((policy, i) => ({ name: `${check.role}#${i}`, policy }));
  const account = check.role.split(':')[4];
  const results = await runSimulation({
    request: {
      principal: check.role, action: check.action,
      resource: { resource: check.resource, accountId: account }, contextVariables: check.context || {},
    },
    identityPolicies, serviceControlPolicies: [], resourceControlPolicies: [],
    resourcePolicy: check.resource_policy ? resourcePolicies[check.resource_policy] : undefined,
  }, {});
  if (results.resultType === 'error') return { result: 'Error', error: JSON.stringify(results.errors) };
  const analyses = results.resultType === 'single' ? [results.result] : results.results;
  const identity = analyses.map((r) => r.analysis.identityAnalysis || {});
  const resource = analyses.map((r) => r.analysis.resourceAnalysis || {});
  return {
    result: results.overallResult,
    identity: identity.map((a) => a.result).join(', '),
    resource: resource.map((a) => a.result).join(', '),
    denied_by: identity.concat(resource).flatMap((a) => (a.denyStatements || []).map(label)),
    nearest: identity.flatMap((a) => (a.unmatchedStatements || [])
      .filter((s) => s.actionMatch && s.explain.effect === 'Allow').map(whyNot)),
    ignored_context: analyses.flatMap((r) => r.ignoredContextKeys || []),
  };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { policies, resource_policies: resourcePolicies, checks } = JSON.parse(Buffer.concat(chunks).toString());
  const out = [];
  for (const check of checks) {
    try {
      out.push(await evaluate(policies, resourcePolicies || {}, check));
    } catch (error) {
      out.push({ result: 'Error', error: String(error && error.stack || error) });
    }
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => { console.error(error); process.exit(1); });
