// ipywidgets' html-manager 1.x typesets widget labels with MathJax 2's
// `MathJax.Hub.Queue`; the book loads MathJax 3, which has no Hub. Map the one
// call it makes onto MathJax 3's typesetPromise. (Jupyter Book loads every .js
// in _static on every page, after MathJax.)
(function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub || !mj.version) return;
  mj.Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && typeof mj.typesetPromise === "function") {
          mj.typesetPromise(job[2] ? [job[2]] : undefined).catch(function () {});
        }
      }
    },
  };
})();
