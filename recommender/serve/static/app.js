// The page of `recommender serve`: plain JavaScript over the REST API, nothing from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 50;  // ratings shown at first in "Your ratings" (the rest one click away)
const state = {
  userId: null, key: null, readOnly: false, privateReads: false, datasetUsers: null,
  ratings: new Map(), mineShown: PAGE, genre: null, suggestions: [], active: -1,
};

// -- messages ---------------------------------------------------------------------------

let noticeTimer = null;
function say(text, isError = false) {
  const notice = $("notice");
  notice.textContent = text;
  notice.className = isError ? "error" : "";
  clearTimeout(noticeTimer);
  if (!isError) noticeTimer = setTimeout(() => { notice.textContent = ""; }, 6000);
}

class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// What a person is told for each kind of failure (the API's own text is for developers).
function friendly(error, what) {
  if (!(error instanceof ApiError)) return `The server cannot be reached, so ${what} failed. Check the connection and try again.`;
  switch (error.status) {
    case 401: return state.privateReads && !state.key
      ? "This user's ratings need the user's key: open the user with it."
      : "The key does not match this user. Open the user again with the right key.";
    case 403: return "Users that come with the dataset cannot be changed. Press \u201cStart over\u201d to rate as yourself.";
    case 404: return error.message.startsWith("user") ? "There is no such user. Check the number, or start over." : `Not found: ${what} failed.`;
    case 429: return error.retryAfter === "1" ? "Too many requests at once. Try again in a second."
      : `Too many requests at once. Try again in ${error.retryAfter || "a few"} seconds.`;
    default: return error.status >= 500 ? `The server had a problem, so ${what} failed. Try again in a moment.`
      : `That was not accepted, so ${what} failed.`;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  let response;
  try {
    response = await fetch(path, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new Error(String(error));
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : response.statusText;
    throw new ApiError(response.status, detail, response.headers.get("Retry-After"));
  }
  return data;
}

// -- building blocks --------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

let controlCount = 0;
// A star control: ten radio buttons (half stars) drawn as five stars, none chosen until the
// user chooses. A click saves at once; with the keyboard, arrows choose and Enter saves.
function stars(movie) {
  const group = el("fieldset", "stars");
  const name = "stars-" + (++controlCount);
  const legend = el("legend", "sr-only", `Your rating of ${movie.title}`);
  const shown = el("span", "stars-value");
  group.append(legend);
  const current = state.ratings.get(movie.movie_id);
  const paint = (value) => {
    group.querySelectorAll("label").forEach((label) =>
      label.classList.toggle("on", value !== null && Number(label.dataset.value) <= value));
  };
  const describe = (value, pending) => {
    shown.textContent = value === null || value === undefined ? "not rated"
      : pending ? `${value} – Enter saves` : `${value}/5`;
  };
  let pointer = false;
  for (let i = 1; i <= 10; i++) {
    const value = i / 2;
    const input = el("input", "sr-only");
    Object.assign(input, { type: "radio", name, value: String(value), id: `${name}-${i}` });
    input.checked = current === value;
    input.disabled = state.readOnly;
    const label = el("label", i % 2 ? "half left" : "half right");
    label.htmlFor = input.id;
    label.dataset.value = String(value);
    label.title = `${value} star${value === 1 ? "" : "s"}`;
    label.append(el("span", "", "★"), el("span", "sr-only", `${value} stars`));
    label.addEventListener("pointerenter", () => paint(value));
    label.addEventListener("pointerdown", () => { pointer = true; });
    input.addEventListener("change", () => {
      paint(value);
      if (pointer) { pointer = false; save(movie, value); } else describe(value, true);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); save(movie, value); }
    });
    group.append(input, label);
  }
  group.addEventListener("pointerleave", () => paint(state.ratings.get(movie.movie_id) ?? null));
  group.append(shown);
  paint(current ?? null);
  describe(current);
  return group;
}

function card(movie, extra) {
  const item = el("li", "card");
  const head = el("div", "card-head");
  head.append(el("span", "title", movie.title));
  item.append(head, el("div", "meta", movie.genres.join(" · ")));
  if (extra) item.append(extra);
  const row = el("div", "row");
  row.append(stars(movie));
  const more = el("button", "link more", "More like this");
  more.type = "button";
  more.addEventListener("click", () => showSimilar(movie));
  row.append(more);
  item.append(row);
  return item;
}

// -- browsing and search ----------------------------------------------------------------

async function browse(genre) {
  state.genre = genre;
  document.querySelectorAll("#genres button").forEach((b) =>
    b.setAttribute("aria-pressed", String((b.dataset.genre || null) === genre)));
  $("browse-title").textContent = genre ? `Most rated: ${genre}` : "Most rated";
  try {
    const query = genre ? `&genre=${encodeURIComponent(genre)}` : "";
    const movies = await api("GET", `/popular?top_n=12${query}`);
    $("browse-list").replaceChildren(...movies.map((m) => card(m,
      el("div", "meta", `${m.mean_rating.toFixed(1)} average from ${m.ratings.toLocaleString()} ratings`))));
  } catch (error) { say(friendly(error, "loading the movies"), true); }
}

function genreChips(genres) {
  const chips = [null, ...genres].map((genre) => {
    const chip = el("button", "chip", genre || "All");
    chip.type = "button";
    if (genre) chip.dataset.genre = genre;
    chip.addEventListener("click", () => browse(genre));
    return chip;
  });
  $("genres").replaceChildren(...chips);
}

let searchTimer = null;
function onSearchInput() {
  clearTimeout(searchTimer);
  const query = $("search").value.trim();
  if (!query) return closeSuggestions();
  searchTimer = setTimeout(async () => {
    try {
      const movies = await api("GET", "/movies?limit=8&search=" + encodeURIComponent(query));
      if ($("search").value.trim() === query) showSuggestions(movies);
    } catch (error) { say(friendly(error, "the search"), true); }
  }, 150);
}

function showSuggestions(movies) {
  const list = $("suggestions");
  state.suggestions = movies;
  state.active = -1;
  list.replaceChildren(...movies.map((movie, i) => {
    const item = el("li", "", movie.title);
    item.setAttribute("role", "option");
    item.id = "suggestion-" + i;
    item.addEventListener("mousedown", (event) => { event.preventDefault(); pick(movie); });
    return item;
  }));
  if (!movies.length) list.append(el("li", "muted", "No movie matches"));
  list.hidden = false;
  $("search").setAttribute("aria-expanded", "true");
}

function closeSuggestions() {
  $("suggestions").hidden = true;
  $("search").setAttribute("aria-expanded", "false");
  $("search").removeAttribute("aria-activedescendant");
}

function onSearchKey(event) {
  const n = state.suggestions.length;
  if (event.key === "Escape") return closeSuggestions();
  if ($("suggestions").hidden || !n) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    state.active = (state.active + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
    [...$("suggestions").children].forEach((li, i) =>
      li.setAttribute("aria-selected", String(i === state.active)));
    $("search").setAttribute("aria-activedescendant", "suggestion-" + state.active);
  } else if (event.key === "Enter") {
    event.preventDefault();
    pick(state.suggestions[Math.max(state.active, 0)]);
  }
}

// A movie picked in the search shows first in the browse list, ready to be rated.
function pick(movie) {
  closeSuggestions();
  $("search").value = "";
  $("browse-title").textContent = "Found";
  const item = card(movie);
  $("browse-list").replaceChildren(item);
  item.querySelector("input").focus();
}

// -- users and ratings ------------------------------------------------------------------

function setUser(userId, key, readOnly) {
  state.userId = userId;
  state.key = key;
  state.readOnly = readOnly;
  state.ratings = new Map();
  state.mineShown = PAGE;
  $("similar").hidden = true;  // panels of the previous user go
  $("similar-list").replaceChildren();
  $("rec-list").replaceChildren();
  $("mine-list").replaceChildren();
  $("recs-empty").hidden = false;
  $("mine-count").textContent = "None yet.";
  $("mine-more").hidden = true;
  $("forget").hidden = userId === null;
  $("who-line").textContent = userId === null
    ? "Rate any movie below to get recommendations. No sign-up needed."
    : readOnly ? `Looking at user ${userId}, who comes with the dataset: you can look, not change.`
      : `You are user ${userId}.`;
  if (userId === null || readOnly) {
    localStorage.removeItem("user");
  } else {
    localStorage.setItem("user", JSON.stringify({ id: userId, key }));
  }
}

async function save(movie, rating) {
  if (state.readOnly) return say(friendly(new ApiError(403, ""), "rating"), true);
  const ratings = [{ movie_id: movie.movie_id, rating }];
  try {
    if (state.userId === null) {
      const created = await api("POST", "/users", { ratings });
      setUser(created.user_id, created.secret, false);
      $("key-text").textContent = created.secret;
      $("key-box").hidden = false;
    } else {
      await api("PUT", `/users/${state.userId}/ratings`, { ratings });
    }
    say(`Saved: ${movie.title}, ${rating}/5.`);
    await refresh();
  } catch (error) { say(friendly(error, "saving the rating"), true); }
}

async function remove(movie) {
  try {
    await api("DELETE", `/users/${state.userId}/ratings/${movie.movie_id}`);
    say(`Removed your rating of ${movie.title}.`);
    await refresh();
  } catch (error) { say(friendly(error, "removing the rating"), true); }
}

async function openUser(event) {
  event.preventDefault();
  const text = $("user-id").value.trim();
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return say("A user number is a whole number from 1.", true);
  const userId = Number(text);
  const key = $("user-key").value.trim() || null;
  const dataset = state.datasetUsers && userId >= state.datasetUsers[0] && userId <= state.datasetUsers[1];
  const previous = [state.userId, state.key, state.readOnly];
  setUser(userId, key, dataset && !key);
  try {
    await refresh();
    $("user-form").hidden = true;
    $("open-toggle").setAttribute("aria-expanded", "false");
    $("user-key").value = "";
    say(`Opened user ${userId}.`);
  } catch (error) {
    setUser(...previous);
    if (previous[0] !== null) refresh().catch(() => {});
    say(friendly(error, "opening the user"), true);
  }
}

function forget() {
  setUser(null, null, false);
  $("key-box").hidden = true;
  browse(state.genre);
  say("Started over: rate a movie to begin again.");
}

async function refresh() {
  if (state.userId === null) return;
  const [mine, recs] = await Promise.all([
    api("GET", `/users/${state.userId}/ratings`),
    api("GET", `/recommend/${state.userId}?top_n=10`),
  ]);
  state.ratings = new Map(mine.ratings.map((r) => [r.movie_id, r.rating]));
  const ordered = [...mine.ratings].sort((a, b) =>
    (b.source === "api") - (a.source === "api") || a.title.localeCompare(b.title));
  $("mine-count").textContent = mine.count
    ? `${mine.count} rating${mine.count === 1 ? "" : "s"}.` : "None yet.";
  $("mine-list").replaceChildren(...ordered.slice(0, state.mineShown).map((r) => {
    const movie = { movie_id: r.movie_id, title: r.title, genres: [] };
    const item = el("li", "card");
    item.append(el("span", "title", r.title));
    const row = el("div", "row");
    row.append(stars(movie));
    if (!state.readOnly) {
      const drop = el("button", "link", "Remove");
      drop.type = "button";
      drop.setAttribute("aria-label", `Remove your rating of ${r.title}`);
      drop.addEventListener("click", () => remove(movie));
      row.append(drop);
    }
    item.append(row);
    return item;
  }));
  const left = ordered.length - state.mineShown;
  $("mine-more").hidden = left <= 0;
  $("mine-more").textContent = `Show all ${ordered.length}`;
  $("recs-empty").hidden = recs.items.length > 0;
  $("rec-list").replaceChildren(...recs.items.map((movie) => {
    const why = el("div", "meta");
    why.append(el("span", "pred", `${movie.predicted_rating.toFixed(1)}★ for you`), " · ",
      el("span", "reason", movie.reason));
    return card(movie, why);
  }));
  browse(state.genre);  // the browse cards show the user's stars
}

async function showSimilar(movie) {
  try {
    const user = state.userId === null ? "" : `&user=${state.userId}`;
    const data = await api("GET", `/movies/${movie.movie_id}/similar?top_n=8${user}`);
    $("similar-title").textContent = data.movie.title;
    $("similar-list").replaceChildren(...data.similar.map((m) => card(m)));
    $("similar").hidden = false;
    $("similar").scrollIntoView({ behavior: "smooth", block: "start" });
    $("similar-close").focus({ preventScroll: true });
  } catch (error) { say(friendly(error, "finding similar movies"), true); }
}

// -- start -------------------------------------------------------------------------------

async function start() {
  $("search").addEventListener("input", onSearchInput);
  $("search").addEventListener("keydown", onSearchKey);
  $("search").addEventListener("blur", () => setTimeout(closeSuggestions, 150));
  $("user-form").addEventListener("submit", openUser);
  $("open-toggle").addEventListener("click", () => {
    const form = $("user-form");
    form.hidden = !form.hidden;
    $("open-toggle").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) $("user-id").focus();
  });
  $("forget").addEventListener("click", forget);
  $("key-done").addEventListener("click", () => { $("key-box").hidden = true; });
  $("key-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("key-text").textContent); say("Key copied."); }
    catch { say("Select the key and copy it by hand.", true); }
  });
  $("similar-close").addEventListener("click", () => { $("similar").hidden = true; });
  $("mine-more").addEventListener("click", () => { state.mineShown = Infinity; refresh(); });
  try {
    const health = await api("GET", "/health");
    state.privateReads = health.private_reads;
    state.datasetUsers = health.dataset_user_ids;
    $("status").textContent = `${health.total_movies.toLocaleString()} movies from ` +
      `${health.dataset}; lists by ${health.models.list.name}, predictions by ` +
      `${health.models.rating.name}.`;
    genreChips(health.genres);
  } catch (error) { say(friendly(error, "loading the page"), true); }
  await browse(null);
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem("user") || "null"); } catch { saved = null; }
  if (saved && saved.id > 0 && saved.key) {
    setUser(saved.id, saved.key, false);
    refresh().catch((error) => {
      say(friendly(error, "opening your ratings"), true);
      setUser(null, null, false);
    });
  }
}

document.addEventListener("DOMContentLoaded", start);
