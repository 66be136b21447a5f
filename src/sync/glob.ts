// A small glob matcher for sync root include/exclude lists. Written here rather
// than pulled from npm because the syntax we promise operators is tiny and must
// not change under us with a dependency upgrade.
//
// Syntax, matched against a root-relative POSIX path (no leading "./"):
//   *       any run of characters except "/"
//   ?       one character except "/"
//   [abc]   one character from the set; [a-z] ranges; [!x] or [^x] negates
//   **      as a whole segment: any number of segments, including none
//   \x      the character x, literally
// A pattern without "/" is matched against the last segment only, at any depth
// (as in .gitignore and rsync), so `*.db` excludes every .db file in the tree.
// A leading "/" anchors a pattern to the root; a trailing "/" is ignored.

export type PathMatcher = (relPath: string) => boolean;

/** Compile patterns into one matcher; an empty list matches nothing. */
export function compileGlobs(patterns: readonly string[]): PathMatcher {
  const compiled = patterns.map(compileOne);
  return (relPath) => {
    const base = relPath.slice(relPath.lastIndexOf("/") + 1);
    return compiled.some((c) => c.re.test(c.basenameOnly ? base : relPath));
  };
}

interface Compiled {
  readonly re: RegExp;
  readonly basenameOnly: boolean;
}

function compileOne(pattern: string): Compiled {
  const anchored = pattern.startsWith("/");
  // A trailing "/" ("cache/") names a directory in .gitignore; here it matches that name (and so prunes it).
  const body = (anchored ? pattern.slice(1) : pattern).replace(/\/+$/, "");
  const basenameOnly = !anchored && !body.includes("/");
  const segments = body.split("/");
  let re = "";
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === "**") {
      // Leading or inner "**/": zero or more whole segments. Trailing "/**": everything
      // below the directory, but not the directory itself ("a/**" does not match "a").
      re += !last ? "(?:[^/]+/)*" : i === 0 ? ".*" : "[^/].*";
      return;
    }
    re += segmentToRegex(seg) + (last ? "" : "/");
  });
  return { re: new RegExp(`^${re}$`, "s"), basenameOnly };
}

function segmentToRegex(seg: string): string {
  let out = "";
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i]!;
    if (ch === "\\" && i + 1 < seg.length) {
      out += escapeRe(seg[++i]!);
    } else if (ch === "*") {
      while (seg[i + 1] === "*") i++; // "a**b" inside a segment means the same as "a*b"
      out += "[^/]*";
    } else if (ch === "?") {
      out += "[^/]";
    } else if (ch === "[") {
      const cls = readClass(seg, i);
      if (cls) {
        out += cls.re;
        i = cls.end;
      } else {
        out += "\\[";
      }
    } else {
      out += escapeRe(ch);
    }
  }
  return out;
}

/** Parse "[...]" starting at seg[start]; undefined when unterminated (then "[" is literal). */
function readClass(seg: string, start: number): { re: string; end: number } | undefined {
  let i = start + 1;
  let negate = false;
  if (seg[i] === "!" || seg[i] === "^") {
    negate = true;
    i++;
  }
  let body = "";
  let first = true;
  for (; i < seg.length; i++) {
    const ch = seg[i]!;
    if (ch === "]" && !first) {
      if (body === "") return undefined;
      return { re: negate ? `[^/${body}]` : `(?!/)[${body}]`, end: i };
    }
    first = false;
    if (ch === "\\" && i + 1 < seg.length) body += escapeClass(seg[++i]!);
    else if (ch === "-") body += "-";
    else body += escapeClass(ch);
  }
  return undefined;
}

function escapeRe(ch: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(ch) ? `\\${ch}` : ch;
}

function escapeClass(ch: string): string {
  return /[\]\\^[-]/.test(ch) ? `\\${ch}` : ch;
}
