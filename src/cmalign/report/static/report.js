// a click on a column's header sorts its table by that column (a cell's data-sort, else its text; numbers as
// numbers); a second click reverses the order. The page's CSP lets this script run by its SHA-256, and nothing else.
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0];
  const key = row => {
    const cell = row.cells[th.cellIndex], value = cell.dataset.sort ?? cell.textContent, number = Number(value);
    return value !== "" && !Number.isNaN(number) ? number : value;
  };
  const up = th.dataset.order !== "up";
  th.closest("tr").querySelectorAll("th").forEach(other => delete other.dataset.order);
  th.dataset.order = up ? "up" : "down";
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
  });
  body.append(...rows);
}));
