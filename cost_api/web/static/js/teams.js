/* Teams: the tokens' tags (`GET /v1/tags`) give the team key (`team`, else the first key the tokens
 * carry) and its values. The selector adds a `tag=team:<value>` filter; the chart's `team` split is
 * `group_by=tag:<key>`; the "By team" card is a lens (js/lenses.js). No tags: neither is shown. */

import { AuthNeeded, api } from "./api.js";
import { $, el, showError } from "./dom.js";
import { addFilter } from "./filters.js";
import { state } from "./state.js";

/** The team key and its values over the range (all of them: not narrowed by the filters). */
export async function loadTeams(range, gen) {
  let body;
  try {
    body = await api("v1/tags", { ...range.params, tz: state.tz });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    body = { keys: [] }; // no tags to offer: the page without teams
    if (gen === state.generation && error.status !== 404) showError("teams-error", error);
  }
  if (gen !== state.generation) return;
  const team = body.keys.find((k) => k.key === "team") || body.keys[0];
  state.teamKey = team ? team.key : "team";
  state.teamValues = team ? team.values.map((v) => v.value) : [];
  showTeams(Boolean(team));
}

function showTeams(tagged) {
  $("team-pick").hidden = !tagged;
  $("teams-card").hidden = !tagged;
  const option = [...$("split-select").options].find((o) => o.value === "team");
  if (option) option.hidden = !tagged;
  if (!tagged) return;
  const key = state.teamKey;
  $("team-label").textContent = key === "team" ? "Team" : `Tag ${key}`;
  $("teams-title").firstChild.textContent = `By ${key} `;
  const chosen = state.filters.tag.filter((t) => t.startsWith(`${key}:`)).map((t) => t.slice(key.length + 1));
  const values = [...new Set([...state.teamValues, ...chosen])];
  $("team-select").replaceChildren(
    el("option", { value: "" }, chosen.length ? `${chosen.join(", ")}` : `All (${values.length})`),
    ...values.filter((v) => !chosen.includes(v)).map((v) => el("option", { value: v }, v)),
  );
  $("team-select").value = "";
}

/** Wire the selector once: a value chosen is a filter chip. */
export function buildTeams() {
  $("team-select").addEventListener("change", (event) => {
    if (event.target.value) addFilter("tag", `${state.teamKey}:${event.target.value}`);
  });
}

/** The chart's `group_by` for the split chosen. */
export const splitGroup = () => (state.split === "team" ? `tag:${state.teamKey}` : state.split);

/** The filter a series of the chart stands for: `[kind, value]`. */
export const splitFilter = (key) => (state.split === "team" ? ["tag", `${state.teamKey}:${key}`] : [state.split, key]);
