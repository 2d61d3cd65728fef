"""The `azure_openai` and `openai` backends (entry points `backends.azure_openai:AzureOpenAIBackend`
and `backends.azure_openai:OpenAIBackend`): hosted fine-tuning jobs, one code for both APIs.

Kept to the exports: `launch list` and dry runs import this package, so nothing here may pull in the
`openai` package. render.py builds the create body (pure); backend.py holds the classes; client.py
the clients and their errors; states.py the job states; prices.py the training prices.
"""

from backends.azure_openai.backend import AzureOpenAIBackend, OpenAIBackend

__all__ = ["AzureOpenAIBackend", "OpenAIBackend"]
