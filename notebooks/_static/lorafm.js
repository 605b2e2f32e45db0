// Site script for the lorafm tutorial (loaded by Jupyter Book from _static/).
// A figure wider than the text column is shown scaled down; clicking it opens it at full size.
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll("div.cell_output img")) {
    const link = () => {
      if (img.naturalWidth <= img.clientWidth + 1 || img.closest("a")) return;
      const a = document.createElement("a");
      a.href = img.src;
      a.target = "_blank";
      a.title = "Open the figure at full size";
      a.className = "lorafm-zoom";
      img.replaceWith(a);
      a.appendChild(img);
    };
    if (img.complete) link(); else img.addEventListener("load", link);
  }
});
