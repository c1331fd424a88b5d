// Branch rules of conveyor.yml: `match` is an exact name, a glob (`*` any run of characters except
// `/`, `?` one character, e.g. `v*.*`) or a `/regex/`. Pure, so config validation and the API share it.

export interface BranchRuleLike {
  match: string;
}

export function isRegexRule(match: string): boolean {
  return match.length >= 2 && match.startsWith('/') && match.endsWith('/');
}

/** Throws SyntaxError for an invalid `/regex/`. */
export function branchMatcher(match: string): (branch: string) => boolean {
  if (isRegexRule(match)) {
    const re = new RegExp(match.slice(1, -1));
    return (b) => re.test(b);
  }
  if (/[*?]/.test(match)) {
    const source = match
      .split('')
      .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
      .join('');
    const re = new RegExp(`^${source}$`);
    return (b) => re.test(b);
  }
  return (b) => b === match;
}

/** The first rule that matches the branch, in file order, or undefined when the branch is not monitored. */
export function findBranchRule<R extends BranchRuleLike>(rules: readonly R[], branch: string): R | undefined {
  return rules.find((r) => branchMatcher(r.match)(branch));
}
