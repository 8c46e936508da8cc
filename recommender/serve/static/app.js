// The page of `recommender serve`: plain JavaScript over the REST API, nothing from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { userId: null, picked: null, needsToken: false, suggestions: [], active: -1 };

let sayTimer = null;
function say(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
  clearTimeout(sayTimer);
  if (!isError) sayTimer = setTimeout(() => { $("message").textContent = ""; }, 4000);
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail)
      ? data.detail.map((e) => `${e.loc.slice(-1)[0]}: ${e.msg}`).join("; ")
      : data.detail || response.statusText;
    throw new Error(detail);
  }
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function movieLine(movie) {
  const line = el("div");
  line.append(el("span", "title", movie.title), " ");
  line.append(el("span", "meta", movie.genres.join(", ")));
  return line;
}

function actions(movie) {
  const row = el("div", "row");
  const rate = el("button", "link", "Rate");
  rate.type = "button";
  rate.addEventListener("click", () => pick(movie));
  const more = el("button", "link more", "More like this");
  more.type = "button";
  more.addEventListener("click", () => showSimilar(movie));
  row.append(rate, more);
  return row;
}

// -- search with autocomplete ------------------------------------------------------------

let searchTimer = null;
function onSearchInput() {
  clearTimeout(searchTimer);
  const query = $("search").value.trim();
  if (!query) return closeSuggestions();
  searchTimer = setTimeout(async () => {
    try {
      const movies = await api("GET", "/movies?limit=8&search=" + encodeURIComponent(query));
      if ($("search").value.trim() === query) showSuggestions(movies);
    } catch (error) { say(error.message, true); }
  }, 120);
}

function showSuggestions(movies) {
  const list = $("suggestions");
  list.replaceChildren();
  state.suggestions = movies;
  state.active = -1;
  if (!movies.length) {
    list.append(el("li", "muted", "No movie matches"));
  }
  movies.forEach((movie, i) => {
    const item = el("li", "", movie.title);
    item.setAttribute("role", "option");
    item.id = "suggestion-" + i;
    item.addEventListener("mousedown", (event) => { event.preventDefault(); pick(movie); });
    list.append(item);
  });
  list.hidden = false;
  $("search").setAttribute("aria-expanded", "true");
}

function closeSuggestions() {
  $("suggestions").hidden = true;
  $("search").setAttribute("aria-expanded", "false");
}

function onSearchKey(event) {
  const n = state.suggestions.length;
  if ($("suggestions").hidden || !n) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    state.active = (state.active + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
    [...$("suggestions").children].forEach((li, i) =>
      li.setAttribute("aria-selected", String(i === state.active)));
  } else if (event.key === "Enter") {
    event.preventDefault();
    pick(state.suggestions[Math.max(state.active, 0)]);
  } else if (event.key === "Escape") {
    closeSuggestions();
  }
}

function pick(movie) {
  state.picked = movie;
  closeSuggestions();
  $("search").value = "";
  $("picked-title").textContent = movie.title;
  $("picked").hidden = false;
  $("stars").focus();
}

// -- users and ratings -----------------------------------------------------------------

async function rate() {
  const movie = state.picked;
  if (!movie) return;
  const ratings = [{ movie_id: movie.movie_id, rating: Number($("stars").value) }];
  $("rate-btn").disabled = true;
  try {
    if (state.userId === null) {
      const created = await api("POST", "/users", { ratings });
      setUser(created.user_id);
    } else {
      await api("PUT", `/users/${state.userId}/ratings`, { ratings });
    }
    say(`Rated ${movie.title} ${ratings[0].rating}/5`);
    $("picked").hidden = true;
    state.picked = null;
    await refresh();
  } catch (error) {
    say(error.message, true);
  } finally {
    $("rate-btn").disabled = false;
  }
}

function setUser(userId) {
  state.userId = userId;
  $("user-id").value = userId === null ? "" : userId;
  $("who-line").textContent = userId === null
    ? "Rate a movie to start as a new user, or open an existing user."
    : `You are user ${userId}.`;
  if (userId === null) localStorage.removeItem("userId");
  else localStorage.setItem("userId", String(userId));
}

async function openUser(event) {
  event.preventDefault();
  const userId = Number($("user-id").value);
  if (!Number.isInteger(userId) || userId < 1) return say("A user id is a whole number from 1", true);
  try {
    await api("GET", `/users/${userId}/ratings`);
    setUser(userId);
    say(`Opened user ${userId}`);
    await refresh();
  } catch (error) { say(error.message, true); }
}

function newUser() {
  setUser(null);
  $("my-ratings").replaceChildren();
  $("my-count").textContent = "";
  $("rec-list").replaceChildren();
  $("recs-empty").hidden = false;
  say("New user: rate a movie to start.");
}

async function refresh() {
  if (state.userId === null) return;
  const [mine, recs] = await Promise.all([
    api("GET", `/users/${state.userId}/ratings`),
    api("GET", `/recommend/${state.userId}?top_n=10`),
  ]);
  const recent = [...mine.ratings].sort((a, b) => (b.source === "api") - (a.source === "api"));
  $("my-count").textContent = `${mine.count} rating${mine.count === 1 ? "" : "s"}` +
    (mine.count > 12 ? " (showing 12)" : "");
  $("my-ratings").replaceChildren(...recent.slice(0, 12).map((r) =>
    el("li", "", `${r.title} · ${r.rating}/5`)));
  $("recs-empty").hidden = recs.items.length > 0;
  $("rec-list").replaceChildren(...recs.items.map((movie) => {
    const item = el("li");
    const pred = el("span", "pred", `${movie.predicted_rating.toFixed(1)}★ predicted`);
    item.append(movieLine(movie), pred, " ", el("span", "reason", movie.reason), actions(movie));
    return item;
  }));
}

async function showSimilar(movie) {
  try {
    const data = await api("GET", `/movies/${movie.movie_id}/similar?top_n=8`);
    $("similar-title").textContent = data.movie.title;
    $("similar-list").replaceChildren(...data.similar.map((m) => {
      const item = el("li");
      item.append(movieLine(m), actions(m));
      return item;
    }));
    $("similar").hidden = false;
    $("similar").scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (error) { say(error.message, true); }
}

// -- start -----------------------------------------------------------------------------

async function start() {
  for (let stars = 5; stars >= 0.5; stars -= 0.5) {
    const option = el("option", "", `${stars} ★`);
    option.value = String(stars);
    if (stars === 4) option.selected = true;
    $("stars").append(option);
  }
  $("search").addEventListener("input", onSearchInput);
  $("search").addEventListener("keydown", onSearchKey);
  $("search").addEventListener("blur", () => setTimeout(closeSuggestions, 150));
  $("rate-btn").addEventListener("click", rate);
  $("user-form").addEventListener("submit", openUser);
  $("new-user").addEventListener("click", newUser);
  $("token-row").addEventListener("submit", (event) => event.preventDefault());
  try {
    const health = await api("GET", "/health");
    const range = health.dataset_user_ids ? ` · dataset users ${health.dataset_user_ids.join("–")}` : "";
    $("status").textContent = `${health.dataset}: ${health.total_movies} movies, ` +
      `${health.total_users} users${range} · lists by ${health.models.list.name}, ` +
      `ratings by ${health.models.rating.name}`;
    $("token-row").hidden = !health.writes_need_token;
  } catch (error) { say("The API does not answer: " + error.message, true); }
  const saved = Number(localStorage.getItem("userId"));
  if (saved > 0) {
    setUser(saved);
    refresh().catch(() => newUser());
  }
}

document.addEventListener("DOMContentLoaded", start);
