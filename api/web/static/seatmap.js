// The seat map as SVG: one rect per seat, coloured by state (free, held, sold), chosen by
// click or keyboard. One tab stop for the whole map (a roving tabindex): the arrow keys
// move between seats, Space or Enter chooses, so a 600-seat map is not 600 Tab presses.

const NS = "http://www.w3.org/2000/svg";
const STEP = 22; // seat pitch in SVG units
const SEAT = 18;
const ROW_LABEL = 30; // room for the row numbers
const TITLE = 26; // room for the section's name above its rows
const STATES = { ".": "free", h: "held", s: "sold" };

function node(name, attributes = {}) {
  const element = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function price(cents) {
  return cents == null ? "" : ` · ${(cents / 100).toFixed(2)}`;
}

export class SeatMap {
  /** `onChange(chosenLabels, lostLabels)` runs when the choice changes. */
  constructor(container, { maxChosen = 10, onChange = () => {} } = {}) {
    this.container = container;
    this.maxChosen = maxChosen;
    this.onChange = onChange;
    this.chosen = new Set();
    this.seats = new Map(); // label -> {element, state, section, row, number}
    this.grid = new Map(); // "section|row|number" -> label, for arrow keys
    this.active = null;
  }

  /** Draws the seat map (GET /api/events/{id}/seats); keeps the focus and the choice. */
  render(map) {
    const hadFocus = this.container.contains(document.activeElement);
    const general = map.sections.length === 1 && map.sections[0].name === "GA";
    const width = ROW_LABEL + Math.max(...map.sections.map((s) => s.rows[0]?.length || 0)) * STEP;
    const height = map.sections.reduce((h, s) => h + TITLE + s.rows.length * STEP, 0);
    const svg = node("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "group",
      "aria-label": "Seat map: arrow keys move, Space chooses",
      class: "seats-svg",
    });
    // Set through the CSSOM, which the page's CSP allows: a small map is not blown up, a
    // wide one scrolls on a phone rather than shrink its seats below a fingertip.
    svg.style.maxWidth = `${Math.round(width * 1.25)}px`;
    svg.style.minWidth = `${Math.round(width * 0.6)}px`;
    this.seats.clear();
    this.grid.clear();
    const lost = [];
    let y = 0;
    for (const section of map.sections) {
      const title = node("text", { x: 0, y: y + 17, class: "section-title" });
      title.textContent = general ? "General admission" : `Section ${section.name}${price(section.price_cents)}`;
      svg.append(title);
      y += TITLE;
      section.rows.forEach((states, r) => {
        const row = r + 1;
        const label = node("text", { x: 0, y: y + 14, class: "row-label", "aria-hidden": "true" });
        label.textContent = general ? `R${row}` : `${row}`;
        svg.append(label);
        [...states].forEach((code, n) => {
          const number = n + 1;
          const seatLabel = general ? `R${row}-${number}` : `${section.name}-${row}-${number}`;
          const state = STATES[code] || "sold";
          const rect = node("rect", {
            x: ROW_LABEL + n * STEP,
            y,
            width: SEAT,
            height: SEAT,
            rx: 4,
            class: `seat ${state}`,
            role: "checkbox",
            tabindex: "-1",
            "data-label": seatLabel,
          });
          this.seats.set(seatLabel, { element: rect, state, section: section.name, row, number });
          this.grid.set(`${section.name}|${row}|${number}`, seatLabel);
          if (this.chosen.has(seatLabel) && state !== "free") {
            this.chosen.delete(seatLabel);
            lost.push(seatLabel);
          }
          this.paint(seatLabel);
          svg.append(rect);
        });
        y += STEP;
      });
    }
    svg.addEventListener("click", (e) => this.toggle(e.target.dataset?.label));
    svg.addEventListener("keydown", (e) => this.key(e));
    this.container.replaceChildren(svg);
    if (!this.seats.has(this.active)) this.active = this.firstFree() || this.seats.keys().next().value;
    this.focusable(this.active, hadFocus);
    if (lost.length) this.onChange([...this.chosen], lost);
  }

  paint(label) {
    const seat = this.seats.get(label);
    const chosen = this.chosen.has(label);
    seat.element.classList.toggle("chosen", chosen);
    seat.element.setAttribute("aria-checked", String(chosen));
    seat.element.setAttribute("aria-label", `Seat ${label}, ${chosen ? "chosen" : seat.state}`);
    if (seat.state === "free") seat.element.removeAttribute("aria-disabled");
    else seat.element.setAttribute("aria-disabled", "true");
  }

  firstFree() {
    for (const [label, seat] of this.seats) if (seat.state === "free") return label;
    return null;
  }

  focusable(label, focus) {
    if (!label) return;
    const previous = this.seats.get(this.active);
    if (previous) previous.element.setAttribute("tabindex", "-1");
    this.active = label;
    const seat = this.seats.get(label);
    seat.element.setAttribute("tabindex", "0");
    if (focus) seat.element.focus();
  }

  toggle(label) {
    const seat = this.seats.get(label);
    if (!seat || seat.state !== "free") return;
    if (this.chosen.has(label)) this.chosen.delete(label);
    else if (this.chosen.size < this.maxChosen) this.chosen.add(label);
    this.focusable(label, true);
    this.paint(label);
    this.onChange([...this.chosen], []);
  }

  key(event) {
    const seat = this.seats.get(this.active);
    if (!seat) return;
    if (event.key === " " || event.key === "Enter") {
      event.preventDefault();
      this.toggle(this.active);
      return;
    }
    const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const next = this.grid.get(`${seat.section}|${seat.row + move[0]}|${seat.number + move[1]}`);
    if (next) this.focusable(next, true);
  }

  clear() {
    const labels = [...this.chosen];
    this.chosen.clear();
    for (const label of labels) if (this.seats.has(label)) this.paint(label);
    this.onChange([], []);
  }
}
