// A CodeMirror 6 editor: Jinja highlighting for templates, JSON for JSON values. Controlled:
// `value` in, `onChange` out; outside changes to `value` replace the document.
import { useEffect, useRef } from 'react';
import { EditorState, type Extension } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, placeholder as placeholderExt } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching } from '@codemirror/language';
import { jinja2 } from '@codemirror/legacy-modes/mode/jinja2';
import { json } from '@codemirror/lang-json';

const jinja = StreamLanguage.define(jinja2);

/**
 * The style nonce the server put in `<meta name="csp-nonce">` for this page (its CSP allows
 * no other inline style); none when the page was not served by `formaops` (the dev server).
 */
function styleNonce(): string | null {
  const v = document.querySelector('meta[name="csp-nonce"]')?.getAttribute('content');
  return v && !v.startsWith('__') ? v : null;
}

export interface CodeEditorProps {
  value: string;
  onChange: (value: string) => void;
  language: 'jinja' | 'json';
  /** Accessible name (CodeMirror's content element gets it as aria-label). */
  label: string;
  testId?: string;
  placeholder?: string;
  minLines?: number;
  invalid?: boolean;
}

export function CodeEditor({ value, onChange, language, label, testId, placeholder, minLines = 4, invalid }: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    if (!host.current) return;
    const extensions: Extension[] = [
      lineNumbers(),
      history(),
      bracketMatching(),
      keymap.of([...defaultKeymap, ...historyKeymap]),
      syntaxHighlighting(defaultHighlightStyle),
      EditorView.lineWrapping,
      language === 'jinja' ? jinja : json(),
      EditorView.contentAttributes.of({ 'aria-label': label }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChangeRef.current(u.state.doc.toString());
      }),
      EditorView.theme({ '.cm-content': { minHeight: `${minLines * 1.4}em` } }),
    ];
    if (placeholder) extensions.push(placeholderExt(placeholder));
    const nonce = styleNonce();
    if (nonce) extensions.push(EditorView.cspNonce.of(nonce));
    const v = new EditorView({ parent: host.current, state: EditorState.create({ doc: value, extensions }) });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once per language; `value` changes are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [language, label, placeholder, minLines]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div ref={host} className={`code-editor${invalid ? ' invalid' : ''}`} data-testid={testId} />;
}
