// The call's stage as rules, free of the DOM: who gets a tile, in what order, which badge it
// shows, and how many columns make the tiles largest. vrooms-call.js draws what these decide.

export const TILE_ASPECT = 16 / 9;

/** "Muted" only for someone who could speak: a Viewer is always muted, and saying so on every
 * tile of a class would bury the badge that matters. */
export const mutedBadge = (p) => p.muted && p.canSpeak;

/** Who gets a tile: whoever can be heard or seen. A Viewer is listed in the panel and counted in
 * the header instead: thirty Viewers in a class would otherwise shrink the teacher's picture to a
 * thirty-first of the stage (and a Viewer's own tile would halve it on the Viewer's screen). */
const heardOrSeen = (p) => p.canSpeak || p.camera || p.screenShare;

/** The grid's order: yourself, then cameras that are on, then the rest, each in order of joining,
 * so that in a large call the faces are together at the top, not scattered among initials. */
const tileRank = (p) => (p.self ? 0 : p.camera ? 1 : 2);

/** Who gets a tile, in order; a Viewer with only other Viewers sees its own (not an empty stage). */
export function onStage(everyone) {
  const shown = everyone.filter(heardOrSeen);
  return (shown.length ? shown : everyone.filter((p) => p.self)).sort((a, b) => tileRank(a) - tileRank(b));
}

/** The column count that gives ``count`` 16:9 tiles the largest size in a stage of that size:
 * neither sqrt(count) nor a fixed count fits both a wide window and a tall one. */
export function gridFor(count, width, height, gap) {
  let best = { columns: 1, tileWidth: 0 };
  for (let columns = 1; columns <= count; columns++) {
    const rows = Math.ceil(count / columns);
    const byWidth = (width - gap * (columns - 1)) / columns;
    const byHeight = ((height - gap * (rows - 1)) / rows) * TILE_ASPECT;
    const tileWidth = Math.max(0, Math.min(byWidth, byHeight));
    if (tileWidth > best.tileWidth) best = { columns, tileWidth };
  }
  return best;
}

/** Tiles on one page of the grid: past nine, tiles get too small to recognise anyone, and every
 * video received costs the receiver decoding (the server sends only the page's: visibleVideo). */
export const PAGE_SIZE = 9;

/** The page ``index`` of ``shown`` (clamped to the pages there are), and how many pages. */
export function pageOf(shown, index) {
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  const page = Math.min(Math.max(0, index), pages - 1);
  return { tiles: shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), page, pages };
}

/** The videos a page shows (what the server is asked to send); null: every video (one page). */
export function visibleVideo(paged) {
  if (paged.pages === 1) return null;
  return paged.tiles.filter((p) => !p.self).flatMap((p) => [
    ...(p.camera ? [{ participantId: p.participantId, source: "camera" }] : []),
    ...(p.screenShare ? [{ participantId: p.participantId, source: "screen" }] : []),
  ]);
}
