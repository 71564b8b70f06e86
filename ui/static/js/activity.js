// What an agent is doing, from the live events: thinking, running a command, waiting for the model
// server (execution.waiting), waiting for approval, paused.
export function activityFor(type, data) {
  switch (type) {
    case "execution.dispatched":
      return { code: "queued", label: "starting" };
    case "execution.started":
    case "execution.resumed":
      return { code: "thinking", label: "thinking" };
    case "execution.waiting":
      return { code: "waiting", label: "waiting for the model server" };
    case "execution.paused":
      return { code: "paused", label: "paused" };
    case "approval.requested":
      return { code: "approval", label: "waiting for approval" };
    case "agent.output":
      if (data.kind === "command_output") return { code: "command", label: "running a command" };
      if (data.kind === "tool_call" && /run|command|test/.test(String(data.text).slice(0, 80))) {
        return { code: "command", label: "running a command" };
      }
      return { code: "thinking", label: "thinking" };
    default:
      return null;
  }
}
