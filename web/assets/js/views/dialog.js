// A confirmation dialog on the native <dialog> element: modal, focus kept
// inside, Escape cancels. Resolves to true when confirmed.

import { h } from '../dom.js';

export function confirmDialog({ title, body, confirm = 'Confirm', cancel = 'Cancel' }) {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: 'danger', value: 'yes' }, confirm);
    const no = h('button', { type: 'button', class: 'secondary', value: 'no' }, cancel);
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-body' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', { id: 'confirm-body' }, body),
      h('div', { class: 'actions' }, no, yes),
    );
    const opener = document.activeElement;
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(answer);
    };
    yes.addEventListener('click', () => finish(true));
    no.addEventListener('click', () => finish(false));
    dialog.addEventListener('cancel', (e) => {
      e.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
