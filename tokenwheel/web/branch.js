// "Branch here": fork the session at a token of its text (POST /api/sessions/{id}/fork
// with the version right after that token was added) and go on in the new session.
//
// The API's token_history says no version per token, so the page keeps, for each token of
// the text, where it was added: {session, version, tokenId}, from the answers of append
// and spin (a version counts events, so with undos in between it is not the token's
// position). A fork's first event holds all the tokens it copied, so its own version 1
// cannot cut them; the copied tokens keep the origin they had in the session they came
// from, and a branch at one of them forks that session (the same text and facts).

export class Origins {
  constructor() {
    this.list = [];
    this.known = 0; // the session's version at which this list was last complete
  }

  // A prompt was set (at `version`): no token yet.
  reset(version) {
    this.list = [];
    this.known = version;
  }

  // A token joined the text of `session` at `version` (an append or spin answer).
  appended(session, version, tokenId) {
    this.list.push({ session, version, tokenId });
    this.known = version;
  }

  undone(version) {
    this.list.pop();
    this.known = version;
  }

  // A fork (now at `version`) of the text up to token `index` is the session: its tokens
  // keep their origins.
  forked(index, version) {
    this.list = this.list.slice(0, index + 1);
    this.known = version;
  }

  // The session was read again after another tab changed it (409): `history` is its text
  // at version `now`. Tokens that are still the ones this page knew keep their origins;
  // if the other tab only added tokens (as many events as new tokens), theirs are the
  // versions in between; otherwise the new tokens' origins are unknown (null: no branch
  // there).
  reloaded(session, history, now) {
    const before = this.known;
    let same = 0;
    while (same < this.list.length && same < history.length) {
      if (this.list[same].tokenId !== history[same].token_id) break;
      same += 1;
    }
    const added = history.length - same;
    const onlyAppends = same === this.list.length && now - before === added;
    this.list = this.list.slice(0, same);
    history.slice(same).forEach((token, k) => {
      const version = before + k + 1;
      this.list.push(onlyAppends ? { session, version, tokenId: token.token_id } : null);
    });
    this.known = now;
  }

  // {session, version} to fork for a branch after token `index`, or null when unknown
  at(index) {
    return this.list[index] ?? null;
  }
}
